"""gunicorn settings of the market's web instances: the scaled shape's (scripts/run_scaled.py)
and the local stack's (webapp/stack.py, which ``make run`` and the benchmarks start) both pass
``--config deploy/gunicorn.conf.py``; the command line sets the rest.

When an instance stops (SIGTERM), or its master process dies, its workers finish the requests
they have accepted. gunicorn's own thread worker stops accepting by no longer polling its
listening socket, but it keeps that socket open until the end. The kernel then goes on
accepting connections into the socket's backlog, nginx sends requests on them, and they are
reset when the worker exits. For a POST that is a lost request: nginx must not resend it,
because the instance may have read it. The worker below closes its listening sockets as soon
as it starts to stop. From then on, connections to the instance are refused, and nginx sends
them, unsent, to the next instance (``proxy_next_upstream error``).
"""

from __future__ import annotations

import gc
import os

from gunicorn.workers.gthread import ThreadWorker


class DrainingThreadWorker(ThreadWorker):
    """gunicorn's thread worker, with two changes.

    It accepts a new connection only while one of its threads is idle. gunicorn's own worker
    accepts up to ``worker_connections`` (1,000) at once, and a kept-alive connection stays
    with the worker that accepted it. The workers share one listening socket, and whichever
    wakes first takes what is waiting: a burst of connections (a proxy's pool, a browser's
    six, a load test's) could all land on one worker. That worker can use one core only (its
    threads share one interpreter lock) while the others idle. Now a worker with every thread
    busy leaves new connections in the backlog for a worker that has time. Connections it
    already holds are served as before.

    And it closes its listening sockets as soon as it starts to stop (see the top of this
    file)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Connections handed to the thread pool and not yet back: what the threads hold.
        self.busy = 0

    def enqueue_req(self, conn: object) -> None:
        self.busy += 1
        super().enqueue_req(conn)
        if self.busy >= self.cfg.threads and self._accepting:
            self.set_accept_enabled(False)

    def finish_request(self, conn: object, fs: object) -> None:
        # Runs on the main loop, like enqueue_req, so the count needs no lock. The main loop
        # turns accepting back on at its next turn (run(): set_accept_enabled(True)).
        self.busy -= 1
        super().finish_request(conn, fs)

    def set_accept_enabled(self, enabled: bool) -> None:
        enabled = enabled and self.alive and self.busy < self.cfg.threads
        super().set_accept_enabled(enabled)
        stopping = not self.alive or self.ppid != os.getppid()
        if not enabled and stopping:
            for listener in self.sockets:
                self._accept_waiting(listener)
                listener.close()

    def _accept_waiting(self, listener: object) -> None:
        """Takes the connections already waiting in the backlog (they would be reset by the
        close); they are answered like any other before the worker exits."""
        while True:
            before = self.nr_conns
            try:
                self.accept(listener)
            except OSError:
                return
            if self.nr_conns == before:
                return


worker_class = DrainingThreadWorker
# Time for the accepted requests to finish before the worker gives up on them.
graceful_timeout = 30


def post_worker_init(worker: object) -> None:
    """Once a worker has loaded the app, every object it holds then (modules, the app, its
    routes and settings: about 180,000) is moved out of the garbage collector's reach
    (``gc.freeze``). They live as long as the worker, yet each full collection walked them all:
    about 80 ms, a pause for every request the worker had in hand, which made the slowest
    percent of page views take 150-200 ms. Objects made later, per request, are collected
    as before."""
    gc.collect()
    gc.freeze()

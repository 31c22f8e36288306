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
    def set_accept_enabled(self, enabled: bool) -> None:
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

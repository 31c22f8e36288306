from escrow.indexer.commands import main

raise SystemExit(main())

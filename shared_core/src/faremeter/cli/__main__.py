from faremeter.cli import main

raise SystemExit(main())

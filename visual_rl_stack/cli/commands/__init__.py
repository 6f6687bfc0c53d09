"""One module per ``vrl`` command, each with ``add_arguments(parser)`` and ``main(args)``."""

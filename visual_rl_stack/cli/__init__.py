"""The ``vrl`` command: :mod:`.main` dispatches to one module per command in :mod:`.commands`."""

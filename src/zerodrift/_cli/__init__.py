"""The ``zerodrift`` command line. Private: use the library modules instead."""

"""Top layer: the ``course-kit`` command line and the notebook tooling behind it."""

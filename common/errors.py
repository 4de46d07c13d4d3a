"""The base of every error a user can act on: the CLI prints it as one line, never a traceback."""


class BbtError(Exception):
    pass

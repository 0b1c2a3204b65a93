"""The one exception type users see: the CLI prints its message as a single line."""


class GanstackError(Exception):
    """A problem with the user's input (config, data, checkpoint, arguments).

    The message must name the file, key or value at fault and say what to do.
    """

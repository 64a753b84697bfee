class ConfigError(ValueError):
    """A configuration (or a file carrying one) is invalid.

    The message always names the offending field and the allowed range, and,
    when the configuration came from a file, the file.
    """

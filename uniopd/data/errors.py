"""The one error of the data layer: a source that could not be read. Every reader raises it with a
message naming the source, the row, the field and the reason; the plan turns it into exit 2."""


class DataError(ValueError):
    """A data source could not be read; the message names the source, row, field and reason."""

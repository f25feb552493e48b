"""Channel-layer group naming of the naive baseline, shared by its consumer and the bench publisher."""


def group_name(service: str, topic: str) -> str:
    """The group of one stream (group names allow only ASCII letters, digits and `-_.`)."""
    return f"stream.{service}.{topic}"

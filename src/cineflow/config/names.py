"""Names that become file and folder names under results/ (video ids, models, external sets, classes)."""

from __future__ import annotations

from cineflow.config.errors import ConfigError

NAME_MAX = 128  # characters of a name that becomes part of a file path


def unsafe_name(name: object) -> str | None:
    """Why `name` (a video id, model, external set or class) cannot be part of a file path under results/,
    or None when it can. Such names become file and folder names, so anything that could climb out of
    results/ or hide a file is refused; spaces and other printable characters are fine.
    """
    if not isinstance(name, str) or not name:
        return "it is empty or not text"
    if len(name) > NAME_MAX:
        return f"it is {len(name)} characters long (at most {NAME_MAX})"
    for bad, what in (("..", "'..'"), ("/", "a '/'"), ("\\", "a '\\'"), ("\0", "a NUL character")):
        if bad in name:
            return f"it contains {what}"
    if name.startswith("."):
        return "it starts with a dot"
    if any(not ch.isprintable() for ch in name):
        return "it contains a control character"
    return None


def check_name(name: object, where: str) -> None:
    """Raise ConfigError naming `where` when `name` cannot be part of a file path (see unsafe_name)."""
    reason = unsafe_name(name)
    if reason:
        raise ConfigError(f"{where}: '{name!s:.60}' cannot name files: {reason}. Rename it with letters, digits, "
                          "spaces, '-' or '_'")

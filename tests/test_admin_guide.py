"""Every command, STREAMING setting and make target the admin guide mentions exists."""

import re
from pathlib import Path

from django.conf import settings
from django.core.management import get_commands

from streaming.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
GUIDES = [ROOT / "docs" / name for name in ("admin-guide.md", "operations.md", "security.md", "clients.md")]


def guide_text() -> str:
    missing = [path.name for path in GUIDES if not path.exists()]
    assert not missing, f"guides missing: {missing}"
    return "\n".join(path.read_text() for path in GUIDES)


def test_admin_guide_exists_and_answers_each_seed_topic():
    text = guide_text()
    for heading in ("Server load", "Restart", "Multiple services", "Authorisation", "Known issues"):
        assert heading.lower() in text.lower(), heading


def test_every_quoted_manage_command_exists():
    commands = set(re.findall(r"manage\.py\s+([a-z_]+)", guide_text()))
    assert commands, "the guide quotes no manage.py command"
    assert commands <= set(get_commands()), commands - set(get_commands())


def documented_env_vars() -> set[str]:
    """The variables of the README's configuration tables, and those the settings read."""
    readme = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", (ROOT / "README.md").read_text(), re.M))
    source = (ROOT / "widgetapp" / "settings.py").read_text()
    return readme | set(re.findall(r'(?:environ\.get|environ\[|env_[a-z]+)\(?\s*"([A-Z][A-Z0-9_]+)"', source))


def streaming_env_overrides() -> set[str]:
    """`STREAMING_<KEY>` variables that widgetapp/settings.py reads into the STREAMING dict."""
    source = (ROOT / "widgetapp" / "settings.py").read_text()
    keys = set(re.findall(r'"([A-Z][A-Z0-9_]+)": (?:int|float),', source))
    assert keys and keys <= set(DEFAULTS), keys - set(DEFAULTS)
    return {f"STREAMING_{key}" for key in keys}


def deployment_variables() -> set[str]:
    """Variables the deployment scripts, templates and Makefile read."""
    sources = [ROOT / "Makefile", *(ROOT / "deploy").rglob("*")]
    text = "\n".join(path.read_text() for path in sources if path.is_file())
    return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text)) | set(
        re.findall(r"^([A-Z][A-Z0-9_]+) \?=", text, re.M)
    )


def code_constants() -> set[str]:
    """Module-level constants of the engine (tunables documented as commented constants)."""
    text = "\n".join(path.read_text() for path in (ROOT / "streaming").rglob("*.py"))
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)(?::[^=]+)? = ", text, re.M))


def test_every_quoted_setting_exists():
    text = guide_text()
    quoted = set(re.findall(r'STREAMING\["([A-Z0-9_]+)"\]', text))
    quoted |= set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`", text))
    assert quoted, "the guide quotes no setting"
    known = set(DEFAULTS) | documented_env_vars() | streaming_env_overrides()
    known |= {"OAUTH2_PROVIDER", *settings.OAUTH2_PROVIDER}
    known |= {name for name in dir(settings) if name.isupper()} | deployment_variables() | code_constants()
    unknown = quoted - known
    assert not unknown, f"not a STREAMING setting nor a documented variable: {sorted(unknown)}"


def test_every_quoted_make_target_exists():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    quoted = set(re.findall(r"`make ([a-z][a-z-]*)", guide_text()))
    assert quoted, "the guide quotes no make target"
    assert quoted <= targets, quoted - targets

"""Every command, flag, setting, URL, close code, make target, admin action and figure quoted exists."""

import re
from argparse import ArgumentParser
from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

from streaming import routing
from streaming.conf import DEFAULTS
from streaming.wire import protocol

ROOT = Path(__file__).resolve().parent.parent
GUIDES = [
    ROOT / "docs" / name
    for name in ("admin-guide.md", "operations.md", "security.md", "clients.md", "oauth.md", "protocol.md")
] + [ROOT / "README.md"]


def guide_text() -> str:
    missing = [path.name for path in GUIDES if not path.exists()]
    assert not missing, f"guides missing: {missing}"
    return "\n".join(path.read_text() for path in GUIDES)


def test_admin_guide_exists_and_answers_each_seed_topic():
    text = guide_text()
    for heading in (
        "What's new",
        "Server load",
        "Restarts",
        "Multiple services",
        "Authorisation",
        "Known issues",
    ):
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
    known |= {key.removeprefix("COMPLIANT_BCP_RFC9700_") for key in settings.OAUTH2_PROVIDER}
    known |= {name for name in dir(settings) if name.isupper()} | deployment_variables() | code_constants()
    unknown = quoted - known
    assert not unknown, f"not a STREAMING setting nor a documented variable: {sorted(unknown)}"


def test_every_quoted_make_target_exists():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    quoted = set(re.findall(r"`make ([a-z][a-z-]*)", guide_text()))
    assert quoted, "the guide quotes no make target"
    assert quoted <= targets, quoted - targets


def parser_flags(parser: ArgumentParser) -> set[str]:
    """Every option string of `parser` and of its subcommands."""
    flags: set[str] = set()
    for action in parser._actions:
        flags.update(action.option_strings)
        choices = getattr(action, "choices", None)
        for sub in choices.values() if isinstance(choices, dict) else ():
            flags |= parser_flags(sub)
    return flags


def test_every_quoted_flag_exists_in_its_command():
    commands = get_commands()
    quoted = re.findall(r"manage\.py ([a-z_]+)((?:[^`\n])*)", guide_text())
    checked = 0
    for name, rest in quoted:
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        unknown = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest)) - parser_flags(parser)
        assert not unknown, f"manage.py {name}: no such flag {sorted(unknown)}"
        checked += 1
    assert checked


#: Paths the docs name as deliberately not served.
NOT_SERVED = {"/o/applications/"}


def test_every_quoted_path_resolves():
    http = {"/" + str(p.pattern) for p in routing.http_urlpatterns + routing.websocket_urlpatterns}
    paths = set(
        re.findall(r"`((?:/admin|/metrics|/healthz|/readyz|/sse|/ws|/o|/app|/api)[^`\s?]*)", guide_text())
    )
    assert paths
    for path in paths - NOT_SERVED:
        if path in http or any(route.startswith(path) for route in http if path.endswith("/")):
            continue
        try:
            view = resolve(path).func.__name__
        except Resolver404:
            view = "catch_all_view"
        assert view != "catch_all_view", f"{path} is neither a Django URL nor an ASGI route"


def test_every_quoted_close_code_exists():
    codes = {value for name, value in vars(protocol).items() if name.startswith("CLOSE_")}
    quoted = {int(code) for code in re.findall(r"(?<![\d.,])(4\d{3})(?![\d,])", guide_text())}
    assert quoted, "the docs quote no close code"
    assert quoted <= codes, f"not a close code of streaming/wire/protocol.py: {sorted(quoted - codes)}"


def admin_action_descriptions() -> set[str]:
    descriptions = set()
    for model_admin in admin.site._registry.values():
        for func, _name, description in model_admin._get_base_actions():
            descriptions.add(str(description or func.short_description))
    return descriptions


def test_every_quoted_admin_action_exists():
    quoted = set(re.findall(r"\*([A-Z][a-z]+ selected [^*]+?)\*", guide_text()))
    assert quoted, "the docs quote no admin action"
    actions = admin_action_descriptions()
    unknown = {q for q in quoted if not any(a.startswith(q) for a in actions)}
    assert not unknown, f"no such admin action: {sorted(unknown)}"


def test_every_figure_of_the_admin_guide_is_in_performance_md():
    guide = (ROOT / "docs" / "admin-guide.md").read_text()
    performance = (ROOT / "docs" / "performance.md").read_text()
    figures = set(
        re.findall(
            r"(\d[\d,.]*\d|\d)(?:–(\d[\d,.]*\d|\d))?\s?(?:µs|ms|KB|MB|connects/s|deliveries/s)\b", guide
        )
    )
    numbers = {n for pair in figures for n in pair if n}
    assert numbers, "the guide quotes no figure"
    missing = sorted(
        n for n in numbers if not re.search(rf"(?<![\d.,]){re.escape(n)}(?![\d,]|\.\d)", performance)
    )
    assert not missing, f"figures not in docs/performance.md: {missing}"

"""The compose stack's nginx config (docker/nginx/deskbot.conf), read as nginx reads it:
Rasa's REST channel is not routed from the internet unless the operator adds the
opt-in file, while the widget, the API and the console are.

No nginx runs here, so the config is parsed (blocks, directives, `include` globs
relative to the compose mounts) and each URI's location chosen by nginx's rules for
exact and prefix locations; a regex location would need more, and fails the test.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
NGINX = ROOT / "docker" / "nginx"
WEBHOOK = "/webhooks/rest/webhook"
_TOKEN = re.compile(r"#[^\n]*|\"[^\"]*\"|'[^']*'|[{};]|[^\s{};#]+")

Block = list[tuple[str, list[str], Any]]


def parse(text: str, mounts: dict[str, Path]) -> Block:
    """Directives as (name, args, children or None), `include`s expanded."""
    tokens = [t for t in _TOKEN.findall(text) if not t.startswith("#")]
    block, _ = _block(tokens, 0, mounts)
    return block


def _block(tokens: list[str], i: int, mounts: dict[str, Path]) -> tuple[Block, int]:
    out: Block = []
    words: list[str] = []
    while i < len(tokens):
        t = tokens[i]
        i += 1
        if t == "}":
            return out, i
        if t == ";":
            if words[0] == "include":
                for file in _included(words[1], mounts):
                    out.extend(parse(file.read_text(encoding="utf-8"), mounts))
            else:
                out.append((words[0], words[1:], None))
            words = []
        elif t == "{":
            children, i = _block(tokens, i, mounts)
            out.append((words[0], words[1:], children))
            words = []
        else:
            words.append(t)
    return out, i


def _included(pattern: str, mounts: dict[str, Path]) -> list[Path]:
    for target, source in mounts.items():
        if pattern.startswith(target + "/"):
            return sorted(source.glob(pattern.removeprefix(target + "/")))
    raise AssertionError(f"include {pattern} is not under a mounted folder")


def location_for(server: Block, uri: str) -> Block:
    """The location block nginx picks for `uri` (exact, then longest prefix)."""
    best: tuple[int, Block] | None = None
    for name, args, children in server:
        if name != "location":
            continue
        assert args[0] in ("=", "^~") or len(args) == 1, f"regex location {args}: not modelled"
        if args[0] == "=":
            if args[1] == uri:
                return children  # type: ignore[no-any-return]
            continue
        prefix = args[-1]
        if uri.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), children)
    assert best is not None, uri
    return best[1]


def server_block(mounts: dict[str, Path]) -> Block:
    config = parse((NGINX / "deskbot.conf").read_text(encoding="utf-8"), mounts)
    (server,) = [children for name, _args, children in config if name == "server"]
    return server  # type: ignore[no-any-return]


def compose_mounts(nginx_dir: Path) -> dict[str, Path]:
    """The proxy's mounted folders, from the compose file, rooted at `nginx_dir`."""
    doc = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    mounts: dict[str, Path] = {}
    for volume in doc["services"]["proxy"]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./nginx/") and not source.endswith(".conf"):
            mounts[target] = nginx_dir / source.removeprefix("./nginx/")
    return mounts


def proxied(location: Block) -> bool:
    return any(name == "proxy_pass" for name, _args, _children in location)


def test_the_rest_channel_is_not_routed_unless_the_operator_adds_it(tmp_path: Path) -> None:
    mounts = compose_mounts(NGINX)
    assert "/etc/nginx/deskbot.d" in mounts, "the proxy must mount the opt-in folder"
    server = server_block(mounts)
    for uri in (WEBHOOK, "/webhooks/rest/webhook/", "/webhooks/anything"):
        location = location_for(server, uri)
        assert not proxied(location), uri
        assert ("return", ["404"], None) in location, uri
    for uri in ("/", "/api/messages", "/agent/", "/agent/login", "/widget.js", "/api/sessions"):
        assert proxied(location_for(server, uri)), uri
    # With the opt-in file in place (as an operator would copy it), it is routed.
    opt_in = tmp_path / "nginx"
    shutil.copytree(NGINX, opt_in)
    example = opt_in / "deskbot.d" / "rest-channel.conf.example"
    example.rename(example.with_suffix(""))
    server = server_block(compose_mounts(opt_in))
    assert proxied(location_for(server, WEBHOOK))
    assert not proxied(location_for(server, "/webhooks/other"))

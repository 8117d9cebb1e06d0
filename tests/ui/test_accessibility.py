"""Accessibility in Debian's Chromium, against the real app: axe-core's rules
(tests/ui/conftest.py axe_violations) and keyboard-only use of the login page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.ui.conftest import AGENT, LiveApp, axe_violations

pytestmark = pytest.mark.browser

# The focused element's outline, as drawn.
FOCUS_RING = """() => {
  const s = getComputedStyle(document.activeElement);
  return {id: document.activeElement.id, tag: document.activeElement.tagName,
          style: s.outlineStyle, width: parseFloat(s.outlineWidth)};
}"""


def assert_focus_visible(page: Any, element: str) -> None:
    ring = page.evaluate(FOCUS_RING)
    assert ring["id"] == element or ring["tag"].lower() == element, ring
    assert ring["style"] == "solid" and ring["width"] >= 2, ring  # WCAG 2.4.13's 2 px


@pytest.mark.parametrize("query", ["", "?failed=1"])
def test_login_page_has_no_serious_axe_violations(
    axe_source: str, live_app: LiveApp, new_page: Callable[..., Any], query: str
) -> None:
    page = new_page()
    page.goto(f"{live_app.url}/agent/login{query}")
    page.wait_for_selector("#username")
    assert axe_violations(page, source=axe_source) == []


def test_login_with_the_keyboard_alone_and_errors_announced(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.goto(live_app.url + "/agent/login")
    # Labelled fields, the username focused on arrival.
    assert page.get_by_label("Username").evaluate("e => e === document.activeElement")
    page.get_by_label("Password").wait_for()

    def log_in(password: str) -> None:
        page.keyboard.type(AGENT[0])
        assert_focus_visible(page, "username")
        page.keyboard.press("Tab")
        page.keyboard.type(password)
        assert_focus_visible(page, "password")
        page.keyboard.press("Tab")
        assert_focus_visible(page, "button")
        page.keyboard.press("Enter")

    log_in("not-the-password")
    error = page.get_by_role("alert")
    error.wait_for()
    assert error.inner_text() == "Wrong username or password."
    assert error.get_attribute("aria-live") == "assertive"
    # The focused field says what went wrong (read out when focus lands in it).
    username = page.get_by_label("Username")
    assert username.evaluate("e => e === document.activeElement")
    assert username.get_attribute("aria-invalid") == "true"
    described = username.get_attribute("aria-describedby") or ""
    assert error.get_attribute("id") in described.split()

    page.keyboard.press("Control+A")  # the browser may keep the typed username
    log_in(AGENT[1])
    page.wait_for_selector("#console-header")
    page.get_by_text(f"Signed in as {AGENT[2]}").wait_for()

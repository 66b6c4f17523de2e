"""Route patterns have one matcher (plugdock.runtime.routes), used by install checks and compat."""

from __future__ import annotations

import pytest

from plugdock.runtime.routes import pattern_matches, patterns_overlap


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/api/v1/chat/*", "/api/v1/chat/", True),
        ("/api/v1/chat/*", "/api/v1/chat/messages/{id}", True),
        ("/api/v1/chat/*", "/api/v1/chat", False),  # the prefix itself is not below it
        ("/api/v1/chat/*", "/api/v1/chatter/x", False),  # a longer name is another plugin's
        ("/api/v1/notes/{note_id}", "/api/v1/notes/{id}", True),  # parameter names do not count
        ("/api/v1/{org}/*", "/api/v1/{o}/items", True),
        ("/api/v1/notes", "/api/v1/notes/", False),
    ],
)
def test_pattern_matches(pattern: str, path: str, expected: bool) -> None:
    assert pattern_matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("/api/v1/chat/*", "/api/v1/chat/admin/*", True),  # one below the other
        ("/api/v1/chat/*", "/api/v1/chatbot/*", False),
        ("/api/v1/auth/*", "/api/v1/auth/login", True),
        ("/api/v1/users", "/api/v1/users/*", False),  # /users is not below /users/
        ("/api/v1/x/{a}", "/api/v1/x/{b}", True),
        ("/api/v1/x/{a}", "/api/v1/y/{a}", False),
    ],
)
def test_patterns_overlap_is_symmetric(a: str, b: str, expected: bool) -> None:
    assert patterns_overlap(a, b) is expected
    assert patterns_overlap(b, a) is expected

"""Helpers shared by the tests/test_admin_*.py files: an admin-enabled app and a login."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from core.settings import Settings
from subscribers.web.app import create_app

PASSWORD = "correct horse battery staple"
API_TOKEN = "api-token-0123456789abcdef"


def admin_settings(settings: Settings, **extra: object) -> Settings:
    return settings.model_copy(update={"admin_password": PASSWORD,
                                       "admin_api_token": API_TOKEN, **extra})


def client_for(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), base_url="http://testserver", follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


def login(client: TestClient, password: str = PASSWORD) -> str:
    """Log in through the real form; returns a CSRF token for the next forms."""
    token = csrf_of(client.get("/admin/login").text)
    answer = client.post("/admin/login", data={"csrf": token, "password": password,
                                               "next": "/admin"})
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/admin").text)

"""The search form's confirmation step, as a browser goes through it.

POST /search answers a search that would buy records with a confirmation page; its form
carries the search back with a signed confirmation. These helpers read that form and post
it, so a test can start a paid job the way a user does: Run search, then Confirm.
"""

from __future__ import annotations

import html
import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

CONFIRM_FORM = 'id="confirm-form"'
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def is_confirmation(response: TestResponse) -> bool:
    return response.status_code == 200 and CONFIRM_FORM in response.text


def confirmation_form(page: str, action: str = "confirm") -> MultiDict:
    """The fields the confirmation page's Confirm (or Back: "edit") button posts."""
    form = page.split(CONFIRM_FORM, 1)[1].split("</form>", 1)[0]
    data = MultiDict((name, html.unescape(value)) for name, value in _HIDDEN.findall(form))
    data["action"] = action
    return data


def run_search(client: FlaskClient, data: Any, **kwargs: Any) -> TestResponse:
    """Post the search form and, if it asks, confirm the purchase."""
    response = client.post("/search", data=data)
    if is_confirmation(response):
        return client.post("/search", data=confirmation_form(response.text), **kwargs)
    if kwargs.get("follow_redirects") and response.status_code == 302:
        return client.get(response.headers["Location"])
    return response

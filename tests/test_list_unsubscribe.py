"""The keyword digest and the monthly issue are left separately (issue 16, item 3).

The monthly email's unsubscribe (link and RFC 8058 one-click) stops the monthly issue, the
digest's stops the digest; the page offers "stop everything" as a second button; the consent
record names the list. Real emails from the sender in the outbox, the app over TestClient.
"""

from __future__ import annotations

from core.settings import Settings
from subscribers.models import Status
from tests.support.lists import (
    daily_email,
    last_consent,
    monthly_email,
    one_click,
    stored,
    subscribed,
)
from tests.support.web_app import DAY, client_for


def test_the_monthly_one_click_stops_the_monthly_issue_only(web: Settings) -> None:
    subscribed(web)
    assert one_click(web, monthly_email(web)) == 200
    ada = stored(web)
    assert (ada.status, ada.monthly, ada.digest) == (Status.active, False, True)
    assert last_consent(web) == ("unsubscribe", "one-click", "monthly")
    daily_email(web)  # the digest keeps coming


def test_the_digest_one_click_stops_the_digest_only(web: Settings) -> None:
    subscribed(web)
    assert one_click(web, daily_email(web)) == 200
    ada = stored(web)
    assert (ada.status, ada.monthly, ada.digest) == (Status.active, True, False)
    assert last_consent(web) == ("unsubscribe", "one-click", "digest")
    # The planner and the sender skip whoever does not receive the digest.
    assert not ada.receives_mail(DAY) and ada.gets_mail(DAY)
    # The monthly issue still goes out.
    monthly_email(web)


def test_the_page_offers_that_list_or_everything(web: Settings) -> None:
    subscribed(web)
    message = monthly_email(web)
    url = message["List-Unsubscribe"].strip("<>").removeprefix("http://digest.test")
    client = client_for(web)
    page = client.get(url)
    assert page.status_code == 200
    assert "Stop the monthly clippings" in page.text and "Stop everything" in page.text
    assert stored(web).monthly is True  # opening the page changes nothing
    everything = page.text.split('action="')[2].split('"')[0]  # the second button
    assert client.post(everything, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    ada = stored(web)
    assert ada.status == Status.unsubscribed
    assert last_consent(web) == ("unsubscribe", "one-click", "digest,monthly")


def test_leaving_the_only_list_is_leaving(web: Settings) -> None:
    subscribed(web, monthly=False)
    message = daily_email(web)
    url = message["List-Unsubscribe"].strip("<>").removeprefix("http://digest.test")
    page = client_for(web).get(url)
    assert "Stop everything" not in page.text  # one list: one button
    assert one_click(web, message) == 200
    assert stored(web).status == Status.unsubscribed
    assert last_consent(web) == ("unsubscribe", "one-click", "digest")

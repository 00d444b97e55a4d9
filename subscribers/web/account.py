"""Pages behind a signed link: confirm, manage, unsubscribe.

GET only ever shows a page with a button (link scanners and previews follow links); POST
acts. Every broken, expired or wrong-purpose token, and every token whose subscriber is gone,
gets the same page, so a link tells nothing about anyone. A genuine manage link that is too
old (DIGEST_MANAGE_LINK_DAYS) or was signed out gets one other page, the same for both, that
offers a fresh link by email to the address on file without showing it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from digest.suggestions import THIN_WEEK
from emails.render import short_date
from subscribers import ledger
from subscribers.links import send_fresh_link, sign_out_links
from subscribers.models import Frequency, MailList, Status, Subscriber
from subscribers.privacy import (
    AddressTaken,
    confirm_email_change,
    erase,
    pending_change,
    request_email_change,
    request_export,
)
from subscribers.saved import count_saved, saved_papers
from subscribers.service import (
    InvalidInput,
    accept_proposal,
    confirm,
    digest_stopped_at,
    pause,
    proposal,
    resubscribe,
    resume_digest,
    update_profile,
)
from subscribers.tokens import (
    InvalidToken,
    Purpose,
    SignedLink,
    feed_token,
    make_token,
    read_link,
    signed_out,
    too_old,
)
from subscribers.web.forms import (
    Errors,
    ProfileFields,
    parse_email,
    parse_profile,
    preview_keywords,
    profile_values,
    subscriber_values,
)
from subscribers.web.pages import (
    ACTED_DOC,
    HTML_DOC,
    INVALID_DOC,
    Responses,
    invalid_link,
    local_today,
    message_page,
    page,
    state,
    too_many,
)
from subscribers.web.security import client_ip

router = APIRouter(tags=["account"])
PAUSE_WEEKS = (1, 2, 4, 8, 12)
EXPIRED_LINK_STATUS = 410
EXPIRED_DOC: Responses = {EXPIRED_LINK_STATUS: {
    "description": "A manage link past its age or signed out: offers a fresh one by email",
    **HTML_DOC}}
MANAGE_DOC: Responses = {**ACTED_DOC, **EXPIRED_DOC}
SHOW_DOC: Responses = {**INVALID_DOC, **EXPIRED_DOC}


class Stop(Exception):  # noqa: N818  (not an error: a finished response)
    """Raised with a finished response when a request can go no further."""

    def __init__(self, response: Response) -> None:
        self.response = response


class TokenFields(BaseModel):
    csrf: str = Field("", max_length=500)


class PauseFields(TokenFields):
    weeks: str = Field("0", max_length=3)


class EmailFields(TokenFields):
    new_email: str = Field("", max_length=400)


class EraseFields(TokenFields):
    confirm: str = Field("", max_length=10)


def _verified(request: Request, purpose: Purpose, token: str) -> SignedLink:
    try:
        return read_link(keys=state(request).keys, purpose=purpose, token=token)
    except InvalidToken:
        raise Stop(invalid_link(request)) from None


def expired_link(request: Request, token: str) -> HTMLResponse:
    """A genuine manage link that is too old or signed out: one page for both, with a button
    that emails a fresh link to the address on file (which it never shows)."""
    return page(request, "link_expired.html", {
        "action": f"/manage/{token}/fresh-link",
        "days": state(request).settings.manage_link_days,
    }, status=EXPIRED_LINK_STATUS, with_form=True, private=True)


def _subscriber(request: Request, session: Session, purpose: Purpose, token: str) -> Subscriber:
    """The token's subscriber, or Stop with the invalid-link page."""
    return _subscriber_and_extra(request, session, purpose, token)[0]


def _subscriber_and_extra(request: Request, session: Session, purpose: Purpose,
                          token: str) -> tuple[Subscriber, str]:
    link = _verified(request, purpose, token)
    # Only confirmation links carry extra data (an address change); anything else is forged.
    if purpose != Purpose.confirm and link.extra:
        raise Stop(invalid_link(request))
    # Before the lookup: an old link answers the same whether its subscriber is still here.
    max_age = timedelta(days=state(request).settings.manage_link_days)
    if purpose == Purpose.manage and too_old(link, max_age=max_age):
        raise Stop(expired_link(request, token))
    subscriber = session.get(Subscriber, link.subscriber_id)
    if subscriber is None:
        raise Stop(invalid_link(request))
    if purpose == Purpose.confirm and not link.extra and left_since(link, subscriber):
        raise Stop(invalid_link(request))
    if signed_out(link, valid_from=subscriber.links_valid_from):
        # A confirmation link leads to the settings page too; its owner was just emailed a
        # fresh manage link, so it gets the plain page (confirmation links expire anyway).
        raise Stop(expired_link(request, token) if purpose == Purpose.manage
                   else invalid_link(request))
    return subscriber, link.extra


def left_since(link: SignedLink, subscriber: Subscriber) -> bool:
    """A confirmation link signed before the subscriber's last unsubscribe: dead, so an old
    email cannot put back on the list someone who left (a fresh signup sends a new one)."""
    left = subscriber.unsubscribed_at
    if left is None:
        return False
    return link.issued_at < (left if left.tzinfo else left.replace(tzinfo=UTC))


def _guard(request: Request, csrf: str) -> None:
    """Rate limit and CSRF for a form posted from one of our pages."""
    web = state(request)
    wait = web.actions_window.hit(f"actions:{client_ip(request)}")
    if wait:
        raise Stop(too_many(request, wait))
    if not web.csrf.verify(request, csrf):
        raise Stop(message_page(
            request, status=400, title="Please try again",
            paragraphs=["This form had expired, or your browser blocked the cookie it needs. "
                        "Go back, reload the page, and press the button again."],
        ))


def _manage_url(request: Request, subscriber_id: int, done: str = "") -> str:
    token = make_token(keys=state(request).keys, purpose=Purpose.manage,
                       subscriber_id=subscriber_id)
    return f"/manage/{token}" + (f"?done={done}" if done else "")


# --- confirm ---------------------------------------------------------------------------------


def _change_id(extra: str) -> int:
    kind, _, number = extra.partition(":")
    return int(number) if kind == "email" and number.isdigit() else 0


def _proposal_id(extra: str) -> int:
    """The "already subscribed" email whose new choices a "use these" link accepts."""
    kind, _, number = extra.partition(":")
    return int(number) if kind == "profile" and number.isdigit() else 0


@router.get("/confirm/{token}", response_class=HTMLResponse, responses=INVALID_DOC,
            summary="Confirmation page (changes nothing)")
def confirm_page(request: Request, token: str) -> HTMLResponse:
    with state(request).reading() as session:
        subscriber, extra = _subscriber_and_extra(request, session, Purpose.confirm, token)
        sid = subscriber.id or 0
        context: dict[str, Any] = {"action": f"/confirm/{token}", "new_email": "",
                                   "keywords": subscriber.keywords, "active": False,
                                   "manage_url": "", "proposal": None}
        if _proposal_id(extra):
            wanted = proposal(session=session, subscriber_id=sid,
                              delivery_id=_proposal_id(extra))
            if wanted is None or subscriber.status != Status.active:
                return invalid_link(request)
            context["proposal"] = {"keywords": wanted.get("keywords") or [],
                                   "trending_only": bool(wanted.get("trending_only"))}
        elif extra:
            change = pending_change(session=session, subscriber_id=sid,
                                    change_id=_change_id(extra))
            if change is None:
                return invalid_link(request)
            context["new_email"] = change.new_email
        elif subscriber.status == Status.active:
            context |= {"active": True, "manage_url": _manage_url(request, sid)}
    return page(request, "confirm.html", context, with_form=True, private=True)


@router.post("/confirm/{token}", response_class=HTMLResponse, status_code=303, responses=ACTED_DOC,
             summary="Confirm a subscription or a new address")
def confirm_action(request: Request, token: str,
                   fields: Annotated[TokenFields, Form()]) -> Response:
    with state(request).writing() as session:
        subscriber, extra = _subscriber_and_extra(request, session, Purpose.confirm, token)
        sid = subscriber.id or 0
        _guard(request, fields.csrf)
        if not extra:
            confirm(session=session, subscriber_id=sid)
            return RedirectResponse(_manage_url(request, sid, "confirmed"), status_code=303)
        if _proposal_id(extra):
            if subscriber.status != Status.active or accept_proposal(
                    session=session, subscriber_id=sid,
                    delivery_id=_proposal_id(extra)) is None:
                return invalid_link(request)
            return RedirectResponse(_manage_url(request, sid, "saved"), status_code=303)
        try:
            changed = confirm_email_change(session=session, subscriber_id=sid,
                                           change_id=_change_id(extra))
        except AddressTaken as error:
            return message_page(request, status=409, title="This address is taken",
                                paragraphs=[str(error)])
        if changed is None:
            return invalid_link(request)
    return RedirectResponse(_manage_url(request, sid, "email-changed"), status_code=303)


# --- manage ----------------------------------------------------------------------------------


def _notice(done: str, subscriber: Subscriber) -> str:
    notices = {
        "confirmed": "You're subscribed. Your first digest arrives at your send hour on the "
                     "next announcement day with papers for you.",
        "saved": ("Saved. No more digest emails: your papers go to your personal feed "
                  "(its address is below)." if subscriber.frequency == Frequency.feed
                  else "Saved. Your next digest uses these settings."),
        "paused": "Paused. No digests until "
                  f"{short_date(subscriber.paused_until) if subscriber.paused_until else ''}.",
        "resumed": "Welcome back: digests resume at your next send hour.",
        "email-sent": "We sent a link to the new address. Until it's pressed, emails keep "
                      "going to the current one.",
        "email-changed": f"Done: emails now go to {subscriber.email}.",
        "export": f"A copy of your data is on its way to {subscriber.email}.",
        "resubscribed": "You're back on the list.",
        "digest-resumed": "The keyword digest is back on: it resumes at your next send hour.",
        "limit": "That's today's limit for this kind of email. Please try again tomorrow.",
        "unsaved": "Taken off your saved papers.",
        "feed-new": "Your feed has a new address: paste it into your feed reader. The old one "
                    "no longer works.",
    }
    return notices.get(done, "")


def papers_this_week(request: Request, subscriber: Subscriber) -> int | None:
    """Papers the last 7 days of digests brought this reader, when that is under THIN_WEEK
    and they have been subscribed for a week (None otherwise: nothing to suggest)."""
    week_ago = datetime.now(UTC) - timedelta(days=7)
    confirmed = subscriber.confirmed_at
    if subscriber.trending_only or confirmed is None or _aware(confirmed) > week_ago:
        return None
    with state(request).reading() as session:
        count = ledger.papers_promised_since(session=session, subscriber_ids=[subscriber.id or 0],
                                             since=week_ago)[subscriber.id or 0]
    return count if count < THIN_WEEK else None


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


LIST_NAMES = {MailList.digest.value: "the keyword digest", MailList.monthly.value:
              "the monthly issue"}


def subscriber_lists(request: Request, subscriber: Subscriber) -> dict[str, Any]:
    """Which lists an active reader gets, and when they stopped the keyword digest alone (the
    consent trail's date, None when unknown) if they did."""
    active = subscriber.status == Status.active
    stopped = active and not subscriber.digest
    stopped_on = None
    if stopped:
        with state(request).reading() as session:
            at = digest_stopped_at(session=session, subscriber_id=subscriber.id or 0)
        stopped_on = _aware(at).date() if at is not None else None
    return {"lists_got": [LIST_NAMES[name] for name in subscriber.lists()] if active else [],
            "digest_stopped": stopped, "digest_stopped_on": stopped_on,
            "feed_only": active and subscriber.digest and subscriber.frequency == Frequency.feed}


def feed_url(request: Request, subscriber: Subscriber) -> str:
    """The subscriber's personal feed address (subscribers/web/feed.py serves it)."""
    web = state(request)
    token = feed_token(keys=web.keys, subscriber_id=subscriber.id or 0,
                       generation=subscriber.feed_generation)
    return f"{web.settings.public_url.rstrip('/')}/feed/{token}"


SAVED_SHOWN = 50  # the newest saved papers on the page; the downloads have them all


def saved_list(request: Request, subscriber: Subscriber) -> dict[str, Any]:
    """The reader's saved papers for the manage page: the newest SAVED_SHOWN, and how many."""
    with state(request).reading() as session:
        sid = subscriber.id or 0
        return {"saved": saved_papers(session=session, subscriber_id=sid, limit=SAVED_SHOWN),
                "saved_count": count_saved(session=session, subscriber_id=sid)}


def manage_page(request: Request, subscriber: Subscriber, token: str, *,
                values: dict[str, Any] | None = None, errors: Errors | None = None,
                notice: str = "", status: int = 200) -> HTMLResponse:
    web = state(request)
    values = values or subscriber_values(subscriber)
    keywords = preview_keywords(values["keywords"])
    leave = make_token(keys=web.keys, purpose=Purpose.unsubscribe,
                       subscriber_id=subscriber.id or 0, extra="list:all")  # every list
    week = papers_this_week(request, subscriber)
    lists = subscriber_lists(request, subscriber)
    related = web.preview.related(subscriber.keywords) if week is not None else ()
    return page(request, "manage.html", {
        "base": f"/manage/{token}",
        "unsubscribe_action": f"/unsubscribe/{leave}",
        "email": subscriber.email,
        "status": subscriber.status.value,
        "paused_until": subscriber.paused_until
        if subscriber.paused_until and subscriber.paused_until > local_today(subscriber.timezone)
        else None,
        "values": values,
        "errors": errors or {},
        "notice": notice,
        "pause_weeks": PAUSE_WEEKS,
        "suggestions": related or web.preview.suggestions(),
        "suggestions_label": (
            f"Your keywords brought {week} paper{'' if week == 1 else 's'} in the last 7 days. "
            "Related keywords from the papers that almost matched; press one to add it:"
            if related else ""),
        "preview": web.preview.preview(keywords) if keywords else None,
        "detect_timezone": False,
        "link_days": web.settings.manage_link_days,
        "feed_url": feed_url(request, subscriber),
        **saved_list(request, subscriber),
        **lists,
    }, status=status, with_form=True, private=True)


@router.get("/manage/{token}", response_class=HTMLResponse, responses=SHOW_DOC,
            summary="Manage page (changes nothing)")
def manage(request: Request, token: str,
           done: Annotated[str, Query(max_length=20)] = "") -> HTMLResponse:
    with state(request).reading() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        return manage_page(request, subscriber, token, notice=_notice(done, subscriber))


@router.post("/manage/{token}", response_class=HTMLResponse, status_code=303, responses=MANAGE_DOC,
             summary="Save keywords, frequency, monthly opt-in, time zone and send hour")
def manage_save(request: Request, token: str,
                fields: Annotated[ProfileFields, Form()]) -> Response:
    with state(request).writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        profile, errors = parse_profile(fields)
        if profile is None:
            return manage_page(request, subscriber, token, values=profile_values(fields),
                               errors=errors, status=400)
        update_profile(session=session, subscriber_id=subscriber.id or 0,
                       subscriber_update=profile)
    return RedirectResponse(f"/manage/{token}?done=saved", status_code=303)


@router.post("/manage/{token}/preview", response_class=HTMLResponse, responses=SHOW_DOC,
             summary="Preview keywords without JavaScript (changes nothing)")
def manage_preview(request: Request, token: str,
                   fields: Annotated[ProfileFields, Form()]) -> HTMLResponse:
    with state(request).reading() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        return manage_page(request, subscriber, token, values=profile_values(fields))


@router.post("/manage/{token}/pause", response_class=HTMLResponse, status_code=303,
             responses=MANAGE_DOC, summary="Pause for N weeks (0 resumes)")
def manage_pause(request: Request, token: str, fields: Annotated[PauseFields, Form()]) -> Response:
    with state(request).writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        weeks = int(fields.weeks) if fields.weeks.isdigit() else -1
        if weeks != 0 and weeks not in PAUSE_WEEKS:
            return manage_page(request, subscriber, token, status=400,
                               errors={"weeks": "Choose how many weeks from the list."})
        pause(session=session, subscriber_id=subscriber.id or 0, weeks=weeks,
              today=local_today(subscriber.timezone))
    return RedirectResponse(f"/manage/{token}?done={'paused' if weeks else 'resumed'}",
                            status_code=303)


@router.post("/manage/{token}/email", response_class=HTMLResponse, status_code=303,
             responses=MANAGE_DOC, summary="Change address (confirmed at the new address first)")
def manage_email(request: Request, token: str, fields: Annotated[EmailFields, Form()]) -> Response:
    web = state(request)
    with web.writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        errors: Errors = {}
        new_email = parse_email(fields.new_email, errors, "new_email")
        change = None
        if new_email:
            try:
                change = request_email_change(session=session, subscriber_id=subscriber.id or 0,
                                              new_email=new_email,
                                              mails_per_day=web.limits.mails_per_day,
                                              secret=web.keys[0])
            except InvalidInput as error:
                errors["new_email"] = str(error)
        if errors:
            return manage_page(request, subscriber, token, errors=errors, status=400)
    done = "email-sent" if change is not None else "limit"
    return RedirectResponse(f"/manage/{token}?done={done}", status_code=303)


@router.post("/manage/{token}/export", response_class=HTMLResponse, status_code=303,
             responses=MANAGE_DOC, summary="Email me a copy of my data")
def manage_export(request: Request, token: str, fields: Annotated[TokenFields, Form()]) -> Response:
    web = state(request)
    with web.writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        planned = request_export(session=session, subscriber_id=subscriber.id or 0,
                                 mails_per_day=web.limits.mails_per_day)
    return RedirectResponse(f"/manage/{token}?done={'export' if planned else 'limit'}",
                            status_code=303)


@router.post("/manage/{token}/sign-out", response_class=HTMLResponse,
             responses={**MANAGE_DOC, 200: {"description": "Signed out", **HTML_DOC}},
             summary="Sign out other links: every manage link so far stops; a fresh one is "
                     "emailed")
def manage_sign_out(request: Request, token: str,
                    fields: Annotated[TokenFields, Form()]) -> Response:
    web = state(request)
    with web.writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        email = subscriber.email
        done = sign_out_links(session=session, subscriber_id=subscriber.id or 0,
                              mails_per_day=web.limits.mails_per_day)
    if not done:
        return RedirectResponse(f"/manage/{token}?done=limit", status_code=303)
    return message_page(request, title="Other links are signed out", paragraphs=[
        "Every link to your settings page is signed out, this one included: the ones in "
        "your earlier emails, and any you forwarded.",
        f"We're emailing a fresh link to {email}. Use that one from now on.",
        "Your personal feed has a new address too: find it on the settings page and give it "
        "to your feed reader.",
        "Unsubscribe links in your emails keep working.",
    ])


@router.post("/manage/{token}/fresh-link", response_class=HTMLResponse,
             responses={**INVALID_DOC, 400: ACTED_DOC[400], 429: ACTED_DOC[429],
                        200: {"description": "The same answer, sent or not", **HTML_DOC}},
             summary="Email a fresh manage link to the address on file (from an expired link)")
def manage_fresh_link(request: Request, token: str,
                      fields: Annotated[TokenFields, Form()]) -> Response:
    """Any genuine manage link may ask, expired and signed-out ones above all. The answer is
    the same whether a link went out, the day's limit was reached or the subscriber is gone,
    and the address is never shown: the link goes to its owner's inbox and nowhere else."""
    web = state(request)
    with web.writing() as session:
        link = _verified(request, Purpose.manage, token)
        if link.extra:
            return invalid_link(request)
        _guard(request, fields.csrf)
        send_fresh_link(session=session, subscriber_id=link.subscriber_id,
                        mails_per_day=web.limits.mails_per_day)
    return message_page(request, title="Check your inbox", paragraphs=[
        "If this link belongs to a subscription, a fresh link to its settings is on its way "
        "to the address it was sent to. It should arrive within a few minutes; if it doesn't, "
        "look in your spam folder.",
        f"We send at most {web.limits.mails_per_day} of these a day.",
    ], link=("/", "Go to the home page"))


@router.post("/manage/{token}/resubscribe", response_class=HTMLResponse, status_code=303,
             responses=MANAGE_DOC, summary="Back on the list (or confirm a pending signup)")
def manage_resubscribe(request: Request, token: str,
                       fields: Annotated[TokenFields, Form()]) -> Response:
    with state(request).writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        resubscribe(session=session, subscriber_id=subscriber.id or 0)
    return RedirectResponse(f"/manage/{token}?done=resubscribed", status_code=303)


@router.post("/manage/{token}/resume-digest", response_class=HTMLResponse, status_code=303,
             responses=MANAGE_DOC, summary="Back on the keyword digest after stopping it alone")
def manage_resume_digest(request: Request, token: str,
                         fields: Annotated[TokenFields, Form()]) -> Response:
    with state(request).writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        resume_digest(session=session, subscriber_id=subscriber.id or 0)
    return RedirectResponse(f"/manage/{token}?done=digest-resumed", status_code=303)


@router.post("/manage/{token}/erase", response_class=HTMLResponse,
             responses={**MANAGE_DOC, 200: {"description": "Erased", **HTML_DOC}},
             summary="Erase me: delete everything, keep only a hash of the address")
def manage_erase(request: Request, token: str, fields: Annotated[EraseFields, Form()]) -> Response:
    with state(request).writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        if fields.confirm != "yes":
            return manage_page(request, subscriber, token, status=400,
                               errors={"erase": "Tick the box to confirm you want this."})
        erase(session=session, subscriber_id=subscriber.id or 0)
    return message_page(request, title="Your data is erased", paragraphs=[
        "We deleted your subscription, your keywords and the record of what we sent you.",
        "We keep one thing: a one-way hash of your address, so nobody can quietly add it "
        "back. You can still sign up again yourself whenever you like.",
    ], link=("/", "Go to the home page"))

"""Every table, imported in one place so migrations and `create_all` see the whole schema."""

from digest.papers import Paper
from subscribers.models import Subscriber
from subscribers.ledger import Delivery, SentPaper

__all__ = ["Delivery", "Paper", "SentPaper", "Subscriber"]

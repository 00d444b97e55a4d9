"""Every table, imported in one place so migrations and `create_all` see the whole schema."""

from digest.clippings.models import Clip, MonthlyIssue
from digest.papers import Paper
from digest.semantic import PaperEmbedding
from digest.trending import TrendingScore
from subscribers.events import ProviderEventRecord
from subscribers.feedback import FeedbackVote
from subscribers.ledger import Delivery
from subscribers.models import ConsentEvent, PendingEmail, Subscriber, Suppression
from subscribers.saved import SavedPaper

__all__ = [
    "Clip",
    "ConsentEvent",
    "Delivery",
    "FeedbackVote",
    "MonthlyIssue",
    "Paper",
    "PaperEmbedding",
    "PendingEmail",
    "ProviderEventRecord",
    "SavedPaper",
    "Subscriber",
    "Suppression",
    "TrendingScore",
]

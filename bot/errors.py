"""Domain errors: one-line messages that tell the user what to do; edges translate them."""


class DirectiveError(Exception):
    """Base class for every error the bot shows to a person."""


class ConfigError(DirectiveError):
    """The settings file or environment is invalid."""


class KnowledgeError(DirectiveError):
    """An article file is missing, malformed or inconsistent."""


class InvalidQuestion(DirectiveError):
    """A question is empty, too long or otherwise unusable."""


class IndexMissing(DirectiveError):
    """No built index where one was expected."""


class IndexMismatch(DirectiveError):
    """The built index does not match the model, format or its own files."""


class RebuildInProgress(DirectiveError):
    """Only one rebuild may run at a time."""


class NotFound(DirectiveError):
    """An article id that does not exist."""


class FetchRefused(DirectiveError):
    """A URL could not be fetched safely."""


class ExtractionFailed(DirectiveError):
    """A page or file held no article text."""


class IndexDamaged(IndexMismatch):
    """A build's files are missing, unreadable or disagree with its manifest; ``index build`` repairs it."""


class StorageError(DirectiveError):
    """A file or database could not be read or written (full or read-only disk, held lock, damage)."""


class ConnectionFailed(DirectiveError):
    """Discord could not be reached, even after retrying."""


class PinError(DirectiveError):
    """A moderator's pin cannot be made as asked (no passage, a passage not found verbatim, a duplicate)."""

"""Errors that end the agent with one line on stderr and exit code 2."""
from common.errors import UserError


class AgentError(UserError):
    """A bad input (model, source, config) the user must fix; the message is one line."""


class ModelError(AgentError):
    """The model file, its manifest or its metadata cannot be used."""


class SourceError(AgentError):
    """The video source cannot be opened."""

"""The error of an export or verification that cannot go on (a `common.errors.UserError`: exit code 2)."""
from __future__ import annotations

from common.errors import UserError


class ExportError(UserError):
    """An export or verification that cannot go on; `report` holds the verification lines gathered
    before the failure, so the user sees the numbers that made it fail, not only the verdict."""

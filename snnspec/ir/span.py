"""The frozen model every IR class derives from, and the source span: all that the diagnostics need of
the IR (a check answered from the cache builds no other model)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Span(Model):
    """Where a node came from: a file and 1-based line/column of its first and last character."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

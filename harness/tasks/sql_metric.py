"""Execution accuracy, the text-to-SQL tasks' metric (Spider's and a user's own set's)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from deepeval.errors import MissingTestCaseParamsError
from deepeval.test_case import LLMTestCase

from harness.sql import database_file, execution_match
from harness.tasks.metric import PassFailMetric


class ExecutionAccuracy(PassFailMetric):
    """1.0 when the predicted SQL returns the same result as the gold SQL on the item's
    database, else 0.0, with the reason (see :func:`harness.sql.execution_match`).

    The test case carries the prediction in ``actual_output`` (already extracted SQL; empty
    counts as wrong), the gold SQL in ``expected_output``, and its database as
    ``metadata["db_path"]`` (the SQLite file; the harness's tasks give it) or
    ``metadata["db_id"]`` with ``spider_dir`` given here (``<spider_dir>/database/<db_id>/
    <db_id>.sqlite``: the metric on its own, in a user's deepeval tests). A database file that
    is absent is a failure with that reason; tasks skip such items before scoring.
    """

    metric_name: ClassVar[str] = "Execution Accuracy"

    def __init__(
        self, spider_dir: str | Path | None = None, timeout_s: float = 5.0, threshold: float = 1.0
    ) -> None:
        if spider_dir is not None and not Path(spider_dir).is_dir():
            raise ValueError(
                f"spider_dir {str(spider_dir)!r} is not a folder; pass the Spider folder with database/"
            )
        if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        super().__init__(threshold)
        self.spider_dir = spider_dir
        self.timeout_s = timeout_s

    def _database(self, test_case: LLMTestCase) -> Path:
        metadata = test_case.metadata or {}
        if metadata.get("db_path"):
            return Path(metadata["db_path"])
        if self.spider_dir is not None and metadata.get("db_id"):
            try:  # a db_id that would leave database/ is refused (harness.sql.database_file)
                return database_file(Path(self.spider_dir), str(metadata["db_id"]))
            except ValueError as e:
                self.error = str(e)
                raise MissingTestCaseParamsError(self.error) from None
        self.error = (
            f"test case has no metadata['db_path'] (or metadata['db_id'] with spider_dir) for the "
            f"'{self.__name__}' metric; build it with LLMTestCase(..., metadata={{'db_path': sqlite_file}})"
        )
        raise MissingTestCaseParamsError(self.error)

    def judge(self, test_case: LLMTestCase, gold: str) -> tuple[bool, str]:
        db_path = self._database(test_case)
        if not db_path.is_file():
            return False, f"database {db_path.stem} is absent ({db_path}); the item cannot be scored"
        verdict = execution_match(db_path, gold, test_case.actual_output or "", timeout_s=self.timeout_s)
        return verdict.ok, verdict.reason

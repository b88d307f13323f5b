"""Your own text-to-SQL set (harness/tasks/text2sql.py): one case per (variant, item)."""

from deepeval import assert_test

from fixtures.cases import parametrize_task


def pytest_generate_tests(metafunc):
    parametrize_task(metafunc, "text2sql")


def test_execution_accuracy(case):
    assert_test(case.test_case, [case.metric], run_async=False)

"""Spider execution accuracy: one case per (variant, dev item); the pass rate is the accuracy."""

from deepeval import assert_test

from fixtures.cases import parametrize_task


def pytest_generate_tests(metafunc):
    parametrize_task(metafunc, "spider")


def test_execution_accuracy(case):
    assert_test(case.test_case, [case.metric], run_async=False)

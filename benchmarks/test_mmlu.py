"""MMLU accuracy: one case per (variant, question); the pass rate is the accuracy."""

from deepeval import assert_test

from fixtures.cases import parametrize_task


def pytest_generate_tests(metafunc):
    parametrize_task(metafunc, "mmlu")


def test_multiple_choice(case):
    assert_test(case.test_case, [case.metric], run_async=False)

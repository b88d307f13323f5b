"""MMLU accuracy: one case per (variant, question); the pass rate is the accuracy."""

from deepeval import assert_test

from fixtures.mmlu import parametrize_mmlu


def pytest_generate_tests(metafunc):
    parametrize_mmlu(metafunc)


def test_multiple_choice(mmlu_case):
    assert_test(mmlu_case.test_case, [mmlu_case.metric], run_async=False)

"""Spider execution accuracy: one case per (variant, dev item); the pass rate is the accuracy."""

from deepeval import assert_test

from fixtures.spider import parametrize_spider


def pytest_generate_tests(metafunc):
    parametrize_spider(metafunc)


def test_execution_accuracy(spider_case):
    assert_test(spider_case.test_case, [spider_case.metric], run_async=False)

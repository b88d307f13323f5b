"""MMLU answering: first_letter, fitting shots into the context, loglik scoring with prefix reuse
(checked against plain full-prompt scoring on the tiny model) and batched generation."""

from __future__ import annotations

import pytest

from harness.engine.core import GenerationSettings
from harness.engine.decoding import generate_batch
from harness.engine.loglik import ChoiceScores, score_choices, single_token_ids
from harness.models.loading import context_length
from harness.tasks.mmlu.items import LETTERS, SUBJECT_CATEGORIES, MMLUItem
from harness.tasks.mmlu.prompts import (
    LETTER_CHOICES,
    PromptTooLongError,
    fit_prompts,
    fit_shots,
    mmlu_prompt,
    mmlu_prompt_parts,
)
from harness.tasks.mmlu.scoring import first_letter

CHOICES = LETTER_CHOICES


class LetterScores(ChoiceScores):
    @property
    def letter(self) -> str:
        return LETTERS[self.best]


def score_letters_loglik(model, tokenizer, requests, **kwargs) -> list[LetterScores]:
    """The engine's choice scorer over " A" .. " D", as the MMLU task calls it."""
    scores = score_choices(model, tokenizer, requests, [CHOICES] * len(requests), **kwargs)
    return [LetterScores(*vars(s).values()) for s in scores]


def generate_letters(model, tokenizer, prompts, *, batch_size=8, max_new_tokens=2) -> list[str]:
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens, batch_size=batch_size, add_special_tokens=True
    )
    out = []
    for i in range(0, len(prompts), batch_size):
        out += generate_batch(model, tokenizer, prompts[i : i + batch_size], settings)
    return out


def item(subject: str, index: int, question: str, answer: str = "A", split: str = "test") -> MMLUItem:
    choices = (f"{question} one", "two", "three SELECT", "four count")
    return MMLUItem(subject, SUBJECT_CATEGORIES[subject], split, index, question, choices, answer)


SHOTS = {
    s: [item(s, i, f"Shot {i} about {s}?", "ABCD"[i], "dev") for i in range(3)]
    for s in ("anatomy", "virology")
}
QUESTIONS = [
    item("anatomy", 0, "How many singers do we have?"),
    item("anatomy", 1, "What is 2 + 2?"),
    item(
        "anatomy", 2, "A much longer question about the stadium and the singer, with many more tokens in it?"
    ),
    item("virology", 0, "SELECT name FROM singer?"),
    item("virology", 1, "Is it?"),
]


# --- first_letter ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, letter",
    [
        ("A", "A"),
        (" B", "B"),
        ("\n\n c) three", "C"),
        ("d", "D"),
        ("Sure, the answer is A", "S"),
        ("(A)", "("),
        ("", ""),
        ("  \n\t", ""),
        ("é", "É"),
    ],
)
def test_first_letter_is_the_first_non_space_character_uppercased(raw, letter):
    assert first_letter(raw) == letter


# --- fit_shots ---------------------------------------------------------------------------------


def words(text: str) -> int:
    return len(text.split())


def test_fit_shots_keeps_all_shots_that_fit():
    q = QUESTIONS[0]
    fitted = fit_shots(q, SHOTS["anatomy"], words, max_tokens=10_000)
    assert (fitted.shots_used, fitted.shots_requested, fitted.shots_dropped) == (3, 3, 0)
    assert fitted.prompt == mmlu_prompt(q, SHOTS["anatomy"])
    assert fitted.n_tokens == words(fitted.prompt)


def test_fit_shots_drops_whole_shots_from_the_end_and_says_so():
    q = QUESTIONS[0]
    one_shot = words(mmlu_prompt(q, SHOTS["anatomy"][:1]))
    fitted = fit_shots(q, SHOTS["anatomy"], words, max_tokens=one_shot + 1)
    assert (fitted.shots_used, fitted.shots_dropped) == (1, 2)
    assert fitted.prompt == mmlu_prompt(q, SHOTS["anatomy"][:1])
    # The reserve for the answer counts too.
    assert fit_shots(q, SHOTS["anatomy"], words, max_tokens=one_shot + 1, reserve=2).shots_used == 0


def test_a_question_too_long_even_without_shots_is_an_error_naming_it():
    q = QUESTIONS[2]
    with pytest.raises(
        PromptTooLongError, match=r"anatomy-0002: the 0-shot prompt is \d+ tokens.*context of 20"
    ):
        fit_shots(q, SHOTS["anatomy"], words, max_tokens=20)


def test_fit_prompts_equals_fit_shots_one_by_one_and_counts_in_batches():
    limit = words(mmlu_prompt(QUESTIONS[1], SHOTS["anatomy"][:2])) + 1  # some keep 3, 2, 1 or 0 shots
    requests = [(q, SHOTS[q.subject]) for q in QUESTIONS[:2] + QUESTIONS[3:]]
    calls = []

    def count_many(texts):
        calls.append(len(texts))
        return [words(t) for t in texts]

    batched = fit_prompts(requests, count_many, limit)
    assert batched == [fit_shots(q, shots, words, limit) for q, shots in requests]
    assert len({f.shots_used for f in batched}) > 1
    # One call for all prompts with every shot, then one per round of dropping a shot.
    assert calls[0] == len(requests) and len(calls) == 1 + 3 - min(f.shots_used for f in batched)


def test_fit_prompts_names_the_question_that_never_fits():
    requests = [(QUESTIONS[0], SHOTS["anatomy"]), (QUESTIONS[2], SHOTS["anatomy"])]
    limit = words(mmlu_prompt(QUESTIONS[2], []))  # the first question fits without shots, the second never
    assert words(mmlu_prompt(QUESTIONS[0], [])) < limit
    with pytest.raises(PromptTooLongError, match="anatomy-0002"):
        fit_prompts(requests, lambda texts: [words(t) for t in texts], max_tokens=limit)


def test_context_length_follows_the_config_then_the_tokenizer():
    class Config:
        max_position_embeddings = 4096

    class Model:
        config = Config()

    class Tokenizer:
        model_max_length = 512

    assert context_length(Model().config, Tokenizer()) == 4096
    assert context_length(object(), Tokenizer()) == 512
    assert context_length(object(), None) == 2048


# --- loglik scoring on the tiny model --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from harness.models.loading import load_base_model, load_tokenizer, resolve_model

    resolved = resolve_model(str(tiny_model_dir))
    return load_base_model(resolved, "fp32", "cpu"), load_tokenizer(resolved)


def reference_scores(model, tokenizer, prompt: str) -> list[float]:
    """lm-eval's computation, spelled out: encode context + " X" in one piece, take the tokens
    after the context's, score them from one unbatched, uncached forward pass."""
    import torch

    context = tokenizer(prompt)["input_ids"]
    out = []
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([context])).logits[0, -1].float(), -1)
    for letter in LETTERS:
        whole = tokenizer(prompt + " " + letter)["input_ids"]
        (cont,) = whole[len(context) :]
        out.append(logprobs[cont].item())
    return out


def requests_for(questions, k):
    return [mmlu_prompt_parts(q, SHOTS[q.subject][:k]) for q in questions]


@pytest.mark.parametrize("k", [0, 2])
@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_prefix_reuse_equals_full_prompt_scoring(tiny, k, batch_size):
    model, tokenizer = tiny
    requests = requests_for(QUESTIONS, k)
    reused = score_letters_loglik(model, tokenizer, requests, batch_size=batch_size, min_shared_tokens=1)
    full = score_letters_loglik(model, tokenizer, requests, batch_size=batch_size, reuse_prefix=False)
    assert all(s.reused_tokens > 0 for s in reused)  # the cache path really ran
    assert all(s.reused_tokens == 0 for s in full)
    for r, f, (prefix, suffix) in zip(reused, full, requests):
        ref = reference_scores(model, tokenizer, prefix + suffix)
        assert r.logprobs == pytest.approx(ref, abs=1e-4)
        assert f.logprobs == pytest.approx(ref, abs=1e-4)
        assert r.letter == f.letter == LETTERS[ref.index(max(ref))]
        assert r.prompt_tokens == f.prompt_tokens == len(tokenizer(prefix + suffix)["input_ids"])


def test_split_inside_a_word_still_reads_the_full_prompts_tokens(tiny):
    """The cache holds only the tokens the whole prompts share, so a prefix that ends in the
    middle of a token (or where the tokenizer merges differently) changes nothing."""
    model, tokenizer = tiny
    prompts = [mmlu_prompt(q, SHOTS["anatomy"][:2]) for q in QUESTIONS[:3]]
    cut = prompts[0].index("Shot 1 about") + len("Sh")  # inside a word of the second shot
    assert len({p[:cut] for p in prompts}) == 1
    odd = [(p[:cut], p[cut:]) for p in prompts]
    scores = score_letters_loglik(model, tokenizer, odd, min_shared_tokens=1)
    for s, p in zip(scores, prompts):
        assert s.logprobs == pytest.approx(reference_scores(model, tokenizer, p), abs=1e-4)
        assert 0 < s.reused_tokens < len(tokenizer(p[:cut])["input_ids"])


def test_results_come_back_in_request_order_across_groups(tiny):
    model, tokenizer = tiny
    mixed = requests_for(QUESTIONS[::-1], 2) + requests_for(QUESTIONS[:2], 0)
    together = score_letters_loglik(model, tokenizer, mixed, batch_size=3, min_shared_tokens=1)
    alone = [score_letters_loglik(model, tokenizer, [r])[0] for r in mixed]
    for t, a in zip(together, alone):
        assert t.logprobs == pytest.approx(a.logprobs, abs=1e-4)


def _rows(lengths, shared=0):
    from harness.engine.loglik import _Request

    return [_Request(i, list(range(n)), (1, 2, 3, 4), shared) for i, n in enumerate(lengths)]


@pytest.mark.parametrize(
    "batch_size, max_batch_tokens", [(1, 10_000), (3, 10_000), (8, 100), (8, 35), (8, 1)]
)
def test_batches_hold_every_row_once_longest_first_within_both_caps(batch_size, max_batch_tokens):
    from harness.engine.loglik import _batches

    lengths = [5, 50, 7, 30, 30, 12, 90, 1, 18, 40]
    rows = _rows(lengths, shared=0)
    batches = list(_batches(rows, batch_size, max_batch_tokens))
    flat = [r.index for b in batches for r in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for b in batches:
        width = max(len(r.tokens) for r in b)
        assert len(b) <= batch_size
        # A row longer than the cap still runs, alone.
        assert len(b) * width <= max_batch_tokens or len(b) == 1


def test_batches_count_only_the_tokens_after_the_shared_prefix():
    from harness.engine.loglik import _batches

    rows = _rows([110, 105, 102, 101], shared=100)  # tails of 10, 5, 2 and 1 tokens
    assert [len(b) for b in _batches(rows, 8, 20)] == [2, 2]
    assert [len(b) for b in _batches(rows, 8, 40)] == [4]


def test_token_capped_batches_score_the_same(tiny):
    model, tokenizer = tiny
    requests = requests_for(QUESTIONS, 2) + requests_for(QUESTIONS, 0)
    wide = score_letters_loglik(
        model,
        tokenizer,
        requests,
        batch_size=8,
        max_batch_tokens=100_000,
        min_shared_tokens=1,
    )
    narrow = score_letters_loglik(
        model, tokenizer, requests, batch_size=8, max_batch_tokens=1, min_shared_tokens=1
    )
    for w, n in zip(wide, narrow):
        assert w.logprobs == pytest.approx(n.logprobs, abs=1e-4)


def test_the_general_path_scores_single_tokens_as_the_one_pass_path(tiny):
    """One row per (prompt, continuation), the continuation's log-probabilities read off the
    logits before each of its tokens, equals one pass reading the last position."""
    from harness.engine.loglik import _score_general

    model, tokenizer = tiny
    requests = requests_for(QUESTIONS, 1)
    fast = score_letters_loglik(model, tokenizer, requests, reuse_prefix=False)
    general = dict(
        _score_general(
            model,
            tokenizer,
            requests,
            [CHOICES] * len(requests),
            range(len(requests)),
            4,
            10_000,
            lambda n: None,
        )
    )
    for i, f in enumerate(fast):
        assert general[i].logprobs == pytest.approx(f.logprobs, abs=1e-4)
        assert general[i].token_counts == (1, 1, 1, 1)


def test_multi_token_continuations_are_scored_as_sums(tiny):
    """Cloze-style continuations (choice texts) take the general path; a longer continuation
    that extends a shorter one cannot be more likely than it."""
    model, tokenizer = tiny
    requests = requests_for(QUESTIONS[:2], 0)
    scores = score_choices(model, tokenizer, requests, [(" two", " two three SELECT")] * 2)
    for s in scores:
        assert s.token_counts[1] > s.token_counts[0]
        assert s.logprobs[1] < s.logprobs[0] <= 0


def test_batch_limits_below_one_are_refused():
    with pytest.raises(ValueError, match="max_batch_tokens"):
        score_letters_loglik(None, None, [("x", "y")], max_batch_tokens=0)


def test_ties_go_to_the_earlier_letter():
    assert LetterScores((-1.0, -0.5, -0.5, -2.0), (1,) * 4, 10, 0).letter == "B"
    assert ChoiceScores((-1.0, -1.0, -1.0, -1.0), (1,) * 4, 10, 0).best == 0


def test_a_continuation_that_is_not_one_token_takes_the_general_path():
    class CharTokenizer:  # every character a token: " A" is two
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [ord(c) for c in text]}

    assert single_token_ids(CharTokenizer(), "Q?\nAnswer:", CHOICES) is None
    assert single_token_ids(CharTokenizer(), "Q?\nAnswer:", ("A", "B")) == (ord("A"), ord("B"))


# --- generation ----------------------------------------------------------------------------------


def test_generate_letters_batched_equals_one_by_one(tiny):
    model, tokenizer = tiny
    prompts = [mmlu_prompt(q, SHOTS[q.subject][: i % 3]) for i, q in enumerate(QUESTIONS)]
    batched = generate_letters(model, tokenizer, prompts, batch_size=4, max_new_tokens=3)
    single = [generate_letters(model, tokenizer, [p], max_new_tokens=3)[0] for p in prompts]
    assert batched == single
    assert all(isinstance(s, str) for s in batched)


@pytest.mark.gpu
def test_prefix_reuse_on_cuda_bf16_matches_full_prompt(tiny_model_dir):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from harness.models.loading import load_base_model, load_tokenizer, resolve_model

    resolved = resolve_model(str(tiny_model_dir))
    model, tokenizer = load_base_model(resolved, "bf16", "cuda"), load_tokenizer(resolved)
    requests = requests_for(QUESTIONS, 2)
    reused = score_letters_loglik(model, tokenizer, requests, min_shared_tokens=1)
    full = score_letters_loglik(model, tokenizer, requests, reuse_prefix=False)
    for r, f in zip(reused, full):
        assert r.logprobs == pytest.approx(f.logprobs, abs=0.1)  # bf16: same math, coarser numbers

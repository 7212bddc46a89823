"""The verifiable arithmetic task of lesson 14: questions, the fixed split, answer parsing, rewards."""

from __future__ import annotations

import pytest

from course_lib.data.arithmetic import (
    ALL_QUESTIONS,
    ANSWER_FORMAT,
    HELD_OUT_QUESTIONS,
    TRAIN_QUESTIONS,
    Question,
    arithmetic_reward,
    correctness_reward,
    expected_answer,
    format_reward,
    parse_answer,
)


def test_the_questions_are_one_digit_and_never_negative():
    assert len(ALL_QUESTIONS) == len(set(ALL_QUESTIONS)) == 155
    assert all(0 <= q.a <= 9 and 0 <= q.b <= 9 and q.op in "+-" for q in ALL_QUESTIONS)
    assert min(q.answer for q in ALL_QUESTIONS) == 0 and max(q.answer for q in ALL_QUESTIONS) == 18
    assert Question(7, "-", 3).answer == 4 and Question(7, "+", 5).text == f"What is 7 + 5? {ANSWER_FORMAT}"


def test_the_split_is_fixed_disjoint_and_complete():
    assert len(HELD_OUT_QUESTIONS) == 32 and len(TRAIN_QUESTIONS) == 123
    assert not set(HELD_OUT_QUESTIONS) & set(TRAIN_QUESTIONS)
    assert set(HELD_OUT_QUESTIONS) | set(TRAIN_QUESTIONS) == set(ALL_QUESTIONS)
    texts = {q.text for q in TRAIN_QUESTIONS}
    assert not any(q.text in texts for q in HELD_OUT_QUESTIONS)  # no held-out prompt is ever trained on
    assert {q.op for q in HELD_OUT_QUESTIONS} == {"+", "-"}


@pytest.mark.parametrize("response, expected", [
    ("The answer is 12.", 12),
    ("the answer is 7", 7),
    ("THE ANSWER IS: 3", 3),
    ("So the answer is **9**.", 9),
    ("The answer is = 4", 4),
    ("The answer is -2.", -2),
    ("The answer is 12.0.", 12),
    ("The answer is 5. Wait, no. The answer is 6.", 6),  # the last statement counts
    ("The answer is 3. Actually the answer is 1,200.", None),  # the last statement counts, even unreadable
    ("The answer is 4. No, the answer is four.", None),  # the last statement has no digits: no answer
    ("The answer is 12.5. No: the answer is 12.", 12),  # a readable correction after an unreadable one
    ("The answer is 7. I am sure.", 7),  # text after the last statement does not matter
    ("The answer is 3, since 1 + 2 = 3.", 3),
    ("7 + 5 = 12", None),  # no statement in the required form
    ("The answer is twelve.", None),  # digits required
    ("The answer is 12.5", None),  # not an integer
    ("The answer is 1,200", None),  # thousands separators are not an answer here
    ("The answer is", None),
    ("", None),
])
def test_parse_answer_edge_cases(response, expected):
    assert parse_answer(response) == expected


def test_parse_answer_rejects_a_non_string():
    with pytest.raises(ValueError, match="response: expected a str, got int"):
        parse_answer(12)


def test_expected_answer_reads_the_question_inside_a_chat_prompt(tokenizer):
    from course_lib.llm.generation import chat_prompt

    prompt = chat_prompt(tokenizer, Question(8, "-", 3).text)
    assert prompt != Question(8, "-", 3).text and expected_answer(prompt) == 5
    with pytest.raises(ValueError, match="prompt: expected a question like 'What is 3 \\+ 4\\?'"):
        expected_answer("Write one sentence about rain.")


def test_rewards_score_correctness_and_format():
    prompts = [Question(2, "+", 3).text] * 4
    responses = ["The answer is 5.", "The answer is 6.", "It is 5.", "5"]
    assert correctness_reward(prompts, responses) == [1.0, 0.0, 0.0, 0.0]  # only an answer in the form counts
    assert format_reward(prompts, responses) == [1.0, 1.0, 0.0, 0.0]
    assert arithmetic_reward(prompts, responses) == [1.5, 0.5, 0.0, 0.0]
    with pytest.raises(ValueError, match="prompts, responses: expected two lists of one length"):
        format_reward(prompts, responses[:2])

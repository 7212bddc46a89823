"""What runs a student's function on a case, without knowing the answer: adapters, input specs, tiny models.

The grader's sandboxed child imports only this package (never :mod:`course_lib.checks`, which holds the
references and the hidden cases): the grader builds each case with the checks, pickles its inputs and the
exercise's ``adapt`` (a module-level function of this package, or a :func:`functools.partial` of one), and the
child calls the student's function through that adapter. So nothing here may import ``course_lib.checks``, and
nothing here may compute an exercise's answer.

Layer: below ``checks`` (which imports it), above ``tabular``, ``deep`` and ``llm``.
"""

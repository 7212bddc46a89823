"""The autograder: grade a folder of students' exercise notebooks in a sandbox.

``course-kit grade SUBMISSIONS --out grades.csv`` (see :mod:`course_lib.grading.grader`).

Layer: above ``checks`` (it runs the exercises' public and hidden cases), below ``kit``.
How it works, and what the sandbox does and does not stop: ``docs/instructors.md``.
"""

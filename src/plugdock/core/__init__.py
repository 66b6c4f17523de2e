"""Foundation with no knowledge of an instance's state: database engines, atomic files,
failpoints for crash tests, the validation-error answer.
"""

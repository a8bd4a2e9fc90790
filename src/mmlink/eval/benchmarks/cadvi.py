"""(being written)"""

TASKS: list[dict] = []

import sys


def handle(ctx, payload):
    print("this goes to the run's stdout log")
    print("and this to its stderr log", file=sys.stderr)
    return {"logged": True}

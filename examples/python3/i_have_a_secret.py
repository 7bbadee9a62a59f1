def handle(ctx, payload):
    # secrets named by the function (--secret) and by the run are merged into ctx
    password = ctx["secrets"].get("password")
    if password is None:
        return {"message": "I know nothing"}
    return {"message": "The password is " + password}

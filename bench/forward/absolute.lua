-- wrk as a forward-proxy client: absolute-form request line, Host of the destination.
wrk.path = os.getenv("TARGET_URL")
wrk.headers["Host"] = os.getenv("TARGET_AUTHORITY")

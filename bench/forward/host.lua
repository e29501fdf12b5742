-- The configured-route client, through wrk's scripting path like absolute.lua, so both
-- modes cost the load generator the same.
wrk.headers["Host"] = os.getenv("ROUTE_HOST")

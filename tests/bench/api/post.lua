-- wrk script: POST /api/tasks with a small JSON body; counts non-2xx answers explicitly.
wrk.method = "POST"
wrk.body = '{"title":"bench task","description":"created by wrk"}'
wrk.headers["Content-Type"] = "application/json"

local non2xx = 0
response = function(status, headers, body)
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
    end
end

done = function(summary, latency, requests)
    io.write(string.format("non-2xx: %d (socket errors: connect %d, read %d, write %d, timeout %d)\n",
        summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
        summary.errors.timeout))
end

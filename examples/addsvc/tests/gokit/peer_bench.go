//go:build bench

// go-kit addsvc example's middleware, for addsvc's benchmark (bench/compare.sh): what the
// example's main puts around every call, with the Prometheus client called directly rather
// than through go-kit's metrics package (which Debian does not ship; the direct calls are
// the cheaper of the two).
//
//   - the service's logging and instrumenting middleware (addservice.LoggingMiddleware,
//     InstrumentingMiddleware): a record of each call's arguments, result and error, and the
//     integers summed or characters concatenated counted;
//   - the endpoint's (addendpoint.LoggingMiddleware, InstrumentingMiddleware): a record of
//     each call's transport error and duration, and its duration observed by method and
//     success;
//   - the logger of the example's main: logfmt with a UTC timestamp and the caller.
//
// The example's rate limiter (one call a second) and circuit breaker are left out, as
// addsvc's are off by default.
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/log"
	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	duration := prometheus.NewSummaryVec(prometheus.SummaryOpts{
		Namespace: "example",
		Subsystem: "addsvc",
		Name:      "request_duration_seconds",
		Help:      "Request duration in seconds.",
	}, []string{"method", "success"})
	ints := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "example",
		Subsystem: "addsvc",
		Name:      "integers_summed",
		Help:      "Total count of integers summed via the Sum method.",
	})
	chars := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "example",
		Subsystem: "addsvc",
		Name:      "characters_concatenated",
		Help:      "Total count of characters concatenated via the Concat method.",
	})
	prometheus.MustRegister(duration, ints, chars)

	instrumented = func(logger log.Logger, method string, next endpoint.Endpoint) endpoint.Endpoint {
		logger = log.With(logger, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)
		// The service's middleware, innermost.
		service := func(ctx context.Context, request interface{}) (interface{}, error) {
			response, err := next(ctx, request)
			switch r := response.(type) {
			case sumResponse:
				req := request.(sumRequest)
				logger.Log("method", "Sum", "a", req.A, "b", req.B, "v", r.V, "err", r.Err)
				if r.Err == nil {
					ints.Add(float64(r.V))
				}
			case concatResponse:
				req := request.(concatRequest)
				logger.Log("method", "Concat", "a", req.A, "b", req.B, "v", r.V, "err", r.Err)
				if r.Err == nil {
					chars.Add(float64(len(r.V)))
				}
			}
			return response, err
		}
		// The endpoint's logging, then its instrumenting, outermost.
		endpointLogger := log.With(logger, "method", method)
		logged := func(ctx context.Context, request interface{}) (response interface{}, err error) {
			defer func(begin time.Time) {
				endpointLogger.Log("transport_error", err, "took", time.Since(begin))
			}(time.Now())
			return service(ctx, request)
		}
		observed := duration.MustCurryWith(prometheus.Labels{"method": method})
		return func(ctx context.Context, request interface{}) (response interface{}, err error) {
			defer func(begin time.Time) {
				observed.WithLabelValues(fmt.Sprint(err == nil)).Observe(time.Since(begin).Seconds())
			}(time.Now())
			return logged(ctx, request)
		}
	}
}

// The go-kit peer of addsvc's interop tests (tests/gokit.rs): go-kit's addsvc contract served
// and called with go-kit's own transport packages (transport/http, transport/http/jsonrpc,
// transport/grpc) and traced with go-kit's Zipkin middleware (zipkin-go), as a go-kit user
// writes it. Built by the tests from Debian's Go packages in GOPATH mode, offline.
//
//	peer serve -http-addr A -grpc-addr A -jsonrpc-addr A [-zipkin-url U] [-instrument]
//	    logs "transport=HTTP addr=..." per listener; serves until SIGTERM (spans flushed).
//	    -instrument (a build with -tags bench, peer_bench.go): go-kit addsvc example's logging
//	    and instrumenting middleware on every call, for addsvc's benchmark.
//	peer call -transport http|grpc|jsonrpc -addr HOST:PORT [-zipkin-url U]
//	    reads one call per stdin line, a JSON array ["sum",1,2] or ["concat","a","b"], and
//	    prints one JSON line per call: {"v":..,"trace":..} or {"err":..,"via":..,"code":..}.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/log"
	kitzipkin "github.com/go-kit/kit/tracing/zipkin"
	grpctransport "github.com/go-kit/kit/transport/grpc"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/kit/transport/http/jsonrpc"
	zipkin "github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/reporter"
	zipkinhttp "github.com/openzipkin/zipkin-go/reporter/http"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"peer/pb"
)

// ---- The service: go-kit addsvc's rules, on Go's 64-bit int. ----

var (
	errTwoZeroes       = errors.New("can't sum two zeroes")
	errIntOverflow     = errors.New("integer overflow")
	errMaxSizeExceeded = errors.New("result exceeds maximum size")
)

const (
	intMax = 1<<31 - 1
	intMin = -(intMax + 1)
	maxLen = 10
)

func sum(a, b int) (int, error) {
	if a == 0 && b == 0 {
		return 0, errTwoZeroes
	}
	// The operands are checked, not the result: with b == 0 any a passes, as in go-kit.
	if (b > 0 && a > intMax-b) || (b < 0 && a < intMin-b) {
		return 0, errIntOverflow
	}
	return a + b, nil
}

func concat(a, b string) (string, error) {
	if len(a)+len(b) > maxLen {
		return "", errMaxSizeExceeded
	}
	return a + b, nil
}

func isBusiness(err error) bool {
	return err == errTwoZeroes || err == errIntOverflow || err == errMaxSizeExceeded
}

// ---- Endpoints: requests without JSON tags (go-kit's clients send "A" and "B"), replies
// that carry the business error (endpoint.Failer). ----

type sumRequest struct{ A, B int }

type sumResponse struct {
	V   int   `json:"v"`
	Err error `json:"-"`
}

func (r sumResponse) Failed() error { return r.Err }

type concatRequest struct{ A, B string }

type concatResponse struct {
	V   string `json:"v"`
	Err error  `json:"-"`
}

func (r concatResponse) Failed() error { return r.Err }

func sumEndpoint(_ context.Context, request interface{}) (interface{}, error) {
	req := request.(sumRequest)
	v, err := sum(req.A, req.B)
	return sumResponse{V: v, Err: err}, nil
}

func concatEndpoint(_ context.Context, request interface{}) (interface{}, error) {
	req := request.(concatRequest)
	v, err := concat(req.A, req.B)
	return concatResponse{V: v, Err: err}, nil
}

// instrumented wraps an endpoint in go-kit addsvc example's middleware; set by peer_bench.go
// (build tag bench: it needs the Prometheus client, which the tests do not).
var instrumented func(logger log.Logger, method string, next endpoint.Endpoint) endpoint.Endpoint

// ---- Tracing ----

func newTracer(service, zipkinURL string) (*zipkin.Tracer, reporter.Reporter) {
	if zipkinURL == "" {
		return nil, nil
	}
	rep := zipkinhttp.NewReporter(zipkinURL, zipkinhttp.BatchInterval(50*time.Millisecond))
	local, err := zipkin.NewEndpoint(service, "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	tracer, err := zipkin.NewTracer(rep, zipkin.WithLocalEndpoint(local))
	if err != nil {
		panic(err)
	}
	return tracer, rep
}

// ---- HTTP/JSON ----

type errorBody struct {
	Error string `json:"error"`
}

// The status of an error: 400 for business errors, 500 for anything else (go-kit addsvc's).
func httpStatusOf(err error) int {
	if isBusiness(err) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func encodeHTTPError(_ context.Context, err error, w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(httpStatusOf(err))
	_ = json.NewEncoder(w).Encode(errorBody{Error: err.Error()})
}

func encodeHTTPResponse(ctx context.Context, w http.ResponseWriter, response interface{}) error {
	if f, ok := response.(endpoint.Failer); ok && f.Failed() != nil {
		encodeHTTPError(ctx, f.Failed(), w)
		return nil
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	return json.NewEncoder(w).Encode(response)
}

func decodeHTTPSumRequest(_ context.Context, r *http.Request) (interface{}, error) {
	var req sumRequest
	err := json.NewDecoder(r.Body).Decode(&req)
	return req, err
}

func decodeHTTPConcatRequest(_ context.Context, r *http.Request) (interface{}, error) {
	var req concatRequest
	err := json.NewDecoder(r.Body).Decode(&req)
	return req, err
}

func encodeHTTPRequest(_ context.Context, r *http.Request, request interface{}) error {
	body, err := json.Marshal(request)
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.Body = ioutil.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return nil
}

// An HTTP error answer, read from go-kit's {"error":..} body.
type httpError struct {
	status  int
	message string
}

func (e httpError) Error() string { return e.message }

func decodeHTTPError(r *http.Response) error {
	var body errorBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return httpError{r.StatusCode, r.Status}
	}
	return httpError{r.StatusCode, body.Error}
}

func decodeHTTPSumResponse(_ context.Context, r *http.Response) (interface{}, error) {
	if r.StatusCode != http.StatusOK {
		return nil, decodeHTTPError(r)
	}
	var resp sumResponse
	err := json.NewDecoder(r.Body).Decode(&resp)
	return resp, err
}

func decodeHTTPConcatResponse(_ context.Context, r *http.Response) (interface{}, error) {
	if r.StatusCode != http.StatusOK {
		return nil, decodeHTTPError(r)
	}
	var resp concatResponse
	err := json.NewDecoder(r.Body).Decode(&resp)
	return resp, err
}

// ---- JSON-RPC: go-kit addsvc's codecs, params {"A":..,"B":..}, result {"v":..}; the reply's
// Err is not marshalled, so a business error reaches the caller as {"v":0}, as in go-kit. ----

func decodeRPCSumRequest(_ context.Context, msg json.RawMessage) (interface{}, error) {
	var req sumRequest
	if err := json.Unmarshal(msg, &req); err != nil {
		return nil, &jsonrpc.Error{Code: -32000, Message: fmt.Sprintf("couldn't unmarshal body to sum request: %s", err)}
	}
	return req, nil
}

func decodeRPCConcatRequest(_ context.Context, msg json.RawMessage) (interface{}, error) {
	var req concatRequest
	if err := json.Unmarshal(msg, &req); err != nil {
		return nil, &jsonrpc.Error{Code: -32000, Message: fmt.Sprintf("couldn't unmarshal body to concat request: %s", err)}
	}
	return req, nil
}

func encodeRPCResult(_ context.Context, result interface{}) (json.RawMessage, error) {
	return json.Marshal(result)
}

func encodeRPCParams(_ context.Context, request interface{}) (json.RawMessage, error) {
	return json.Marshal(request)
}

func decodeRPCSumResult(_ context.Context, res jsonrpc.Response) (interface{}, error) {
	if res.Error != nil {
		return nil, *res.Error
	}
	var resp sumResponse
	err := json.Unmarshal(res.Result, &resp)
	return resp, err
}

func decodeRPCConcatResult(_ context.Context, res jsonrpc.Response) (interface{}, error) {
	if res.Error != nil {
		return nil, *res.Error
	}
	var resp concatResponse
	err := json.Unmarshal(res.Result, &resp)
	return resp, err
}

// ---- gRPC: the business error in the reply's err, status OK. ----

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func textErr(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

type grpcServer struct {
	sum, concat grpctransport.Handler
}

func (s *grpcServer) Sum(ctx context.Context, req *pb.SumRequest) (*pb.SumReply, error) {
	_, reply, err := s.sum.ServeGRPC(ctx, req)
	if err != nil {
		return nil, err
	}
	return reply.(*pb.SumReply), nil
}

func (s *grpcServer) Concat(ctx context.Context, req *pb.ConcatRequest) (*pb.ConcatReply, error) {
	_, reply, err := s.concat.ServeGRPC(ctx, req)
	if err != nil {
		return nil, err
	}
	return reply.(*pb.ConcatReply), nil
}

func decodeGRPCSumRequest(_ context.Context, r interface{}) (interface{}, error) {
	req := r.(*pb.SumRequest)
	return sumRequest{A: int(req.A), B: int(req.B)}, nil
}

func decodeGRPCConcatRequest(_ context.Context, r interface{}) (interface{}, error) {
	req := r.(*pb.ConcatRequest)
	return concatRequest{A: req.A, B: req.B}, nil
}

func encodeGRPCSumReply(_ context.Context, r interface{}) (interface{}, error) {
	resp := r.(sumResponse)
	return &pb.SumReply{V: int64(resp.V), Err: errText(resp.Err)}, nil
}

func encodeGRPCConcatReply(_ context.Context, r interface{}) (interface{}, error) {
	resp := r.(concatResponse)
	return &pb.ConcatReply{V: resp.V, Err: errText(resp.Err)}, nil
}

func encodeGRPCSumRequest(_ context.Context, r interface{}) (interface{}, error) {
	req := r.(sumRequest)
	return &pb.SumRequest{A: int64(req.A), B: int64(req.B)}, nil
}

func encodeGRPCConcatRequest(_ context.Context, r interface{}) (interface{}, error) {
	req := r.(concatRequest)
	return &pb.ConcatRequest{A: req.A, B: req.B}, nil
}

func decodeGRPCSumReply(_ context.Context, r interface{}) (interface{}, error) {
	reply := r.(*pb.SumReply)
	return sumResponse{V: int(reply.V), Err: textErr(reply.Err)}, nil
}

func decodeGRPCConcatReply(_ context.Context, r interface{}) (interface{}, error) {
	reply := r.(*pb.ConcatReply)
	return concatResponse{V: reply.V, Err: textErr(reply.Err)}, nil
}

// ---- serve ----

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	httpAddr := fs.String("http-addr", "127.0.0.1:0", "HTTP listen address")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:0", "gRPC listen address")
	rpcAddr := fs.String("jsonrpc-addr", "127.0.0.1:0", "JSON-RPC listen address")
	zipkinURL := fs.String("zipkin-url", "", "Zipkin collector URL")
	instrument := fs.Bool("instrument", false, "go-kit addsvc's logging and instrumenting middleware (-tags bench)")
	_ = fs.Parse(args)

	logger := log.NewLogfmtLogger(log.NewSyncWriter(os.Stderr))
	sumEndpoint, concatEndpoint := endpoint.Endpoint(sumEndpoint), endpoint.Endpoint(concatEndpoint)
	if *instrument {
		if instrumented == nil {
			return errors.New("-instrument needs a build with -tags bench")
		}
		sumEndpoint = instrumented(logger, "Sum", sumEndpoint)
		concatEndpoint = instrumented(logger, "Concat", concatEndpoint)
	}
	tracer, rep := newTracer("gokit-addsvc", *zipkinURL)
	var httpOpts []httptransport.ServerOption
	var grpcOpts []grpctransport.ServerOption
	httpOpts = append(httpOpts, httptransport.ServerErrorEncoder(encodeHTTPError))
	if tracer != nil {
		httpOpts = append(httpOpts, kitzipkin.HTTPServerTrace(tracer))
		grpcOpts = append(grpcOpts, kitzipkin.GRPCServerTrace(tracer))
	}

	mux := http.NewServeMux()
	mux.Handle("/sum", httptransport.NewServer(sumEndpoint, decodeHTTPSumRequest, encodeHTTPResponse, httpOpts...))
	mux.Handle("/concat", httptransport.NewServer(concatEndpoint, decodeHTTPConcatRequest, encodeHTTPResponse, httpOpts...))
	rpc := jsonrpc.NewServer(jsonrpc.EndpointCodecMap{
		"sum":    jsonrpc.EndpointCodec{Endpoint: sumEndpoint, Decode: decodeRPCSumRequest, Encode: encodeRPCResult},
		"concat": jsonrpc.EndpointCodec{Endpoint: concatEndpoint, Decode: decodeRPCConcatRequest, Encode: encodeRPCResult},
	})
	grpcSrv := grpc.NewServer()
	pb.RegisterAddServer(grpcSrv, &grpcServer{
		sum:    grpctransport.NewServer(sumEndpoint, decodeGRPCSumRequest, encodeGRPCSumReply, grpcOpts...),
		concat: grpctransport.NewServer(concatEndpoint, decodeGRPCConcatRequest, encodeGRPCConcatReply, grpcOpts...),
	})

	httpLn, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	grpcLn, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		return err
	}
	rpcLn, err := net.Listen("tcp", *rpcAddr)
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(httpLn, mux) }()
	go func() { _ = grpcSrv.Serve(grpcLn) }()
	go func() { _ = http.Serve(rpcLn, rpc) }()
	logger.Log("transport", "HTTP", "addr", httpLn.Addr())
	logger.Log("transport", "gRPC", "addr", grpcLn.Addr())
	logger.Log("transport", "JSONRPC", "addr", rpcLn.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	grpcSrv.Stop()
	if rep != nil {
		_ = rep.Close()
	}
	return nil
}

// ---- call ----

type result struct {
	V     interface{} `json:"v,omitempty"`
	Err   string      `json:"err,omitempty"`
	Via   string      `json:"via,omitempty"`
	Code  int         `json:"code,omitempty"`
	Trace string      `json:"trace,omitempty"`
}

func call(args []string) error {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	transport := fs.String("transport", "http", "http, grpc or jsonrpc")
	addr := fs.String("addr", "", "host:port of addsvc")
	zipkinURL := fs.String("zipkin-url", "", "Zipkin collector URL")
	_ = fs.Parse(args)

	tracer, rep := newTracer("gokit-addcli", *zipkinURL)
	var sumE, concatE endpoint.Endpoint
	switch *transport {
	case "http":
		var opts []httptransport.ClientOption
		if tracer != nil {
			opts = append(opts, kitzipkin.HTTPClientTrace(tracer))
		}
		sumURL, _ := url.Parse("http://" + *addr + "/sum")
		concatURL, _ := url.Parse("http://" + *addr + "/concat")
		sumE = httptransport.NewClient("POST", sumURL, encodeHTTPRequest, decodeHTTPSumResponse, opts...).Endpoint()
		concatE = httptransport.NewClient("POST", concatURL, encodeHTTPRequest, decodeHTTPConcatResponse, opts...).Endpoint()
	case "jsonrpc":
		target, _ := url.Parse("http://" + *addr + "/")
		sumE = jsonrpc.NewClient(target, "sum", jsonrpc.ClientRequestEncoder(encodeRPCParams), jsonrpc.ClientResponseDecoder(decodeRPCSumResult)).Endpoint()
		concatE = jsonrpc.NewClient(target, "concat", jsonrpc.ClientRequestEncoder(encodeRPCParams), jsonrpc.ClientResponseDecoder(decodeRPCConcatResult)).Endpoint()
	case "grpc":
		conn, err := grpc.Dial(*addr, grpc.WithInsecure())
		if err != nil {
			return err
		}
		defer conn.Close()
		var opts []grpctransport.ClientOption
		if tracer != nil {
			opts = append(opts, kitzipkin.GRPCClientTrace(tracer))
		}
		sumE = grpctransport.NewClient(conn, "pb.Add", "Sum", encodeGRPCSumRequest, decodeGRPCSumReply, pb.SumReply{}, opts...).Endpoint()
		concatE = grpctransport.NewClient(conn, "pb.Add", "Concat", encodeGRPCConcatRequest, decodeGRPCConcatReply, pb.ConcatReply{}, opts...).Endpoint()
	default:
		return fmt.Errorf("-transport: %q is not http, grpc or jsonrpc", *transport)
	}

	out := json.NewEncoder(os.Stdout)
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		var line []json.RawMessage
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil || len(line) != 3 {
			return fmt.Errorf("bad call %q", lines.Text())
		}
		var method string
		_ = json.Unmarshal(line[0], &method)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var res result
		// Each call is a trace of its own: a root span the client's span is a child of.
		if tracer != nil {
			span := tracer.StartSpan("call " + method)
			ctx = zipkin.NewContext(ctx, span)
			res.Trace = span.Context().TraceID.String()
		}
		var reply interface{}
		var err error
		switch method {
		case "sum":
			var req sumRequest
			if json.Unmarshal(line[1], &req.A) != nil || json.Unmarshal(line[2], &req.B) != nil {
				return fmt.Errorf("bad sum %q", lines.Text())
			}
			reply, err = sumE(ctx, req)
		case "concat":
			var req concatRequest
			if json.Unmarshal(line[1], &req.A) != nil || json.Unmarshal(line[2], &req.B) != nil {
				return fmt.Errorf("bad concat %q", lines.Text())
			}
			reply, err = concatE(ctx, req)
		default:
			return fmt.Errorf("unknown method %q", method)
		}
		if span := zipkin.SpanFromContext(ctx); span != nil {
			span.Finish()
		}
		cancel()
		switch {
		case err != nil:
			res.Err = err.Error()
			switch e := err.(type) {
			case httpError:
				res.Via, res.Code = "http", e.status
			case jsonrpc.Error:
				res.Via, res.Code = "jsonrpc", e.Code
			default:
				if s, ok := status.FromError(err); ok && s.Code() != 0 {
					res.Via, res.Code, res.Err = "grpc", int(s.Code()), s.Message()
				} else {
					res.Via = "transport"
				}
			}
		case reply.(endpoint.Failer).Failed() != nil:
			res.Err, res.Via = reply.(endpoint.Failer).Failed().Error(), "reply"
		default:
			switch r := reply.(type) {
			case sumResponse:
				res.V = r.V
			case concatResponse:
				res.V = r.V
			}
		}
		if err := out.Encode(res); err != nil {
			return err
		}
	}
	if rep != nil {
		_ = rep.Close()
	}
	return lines.Err()
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: peer serve|call [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "call":
		err = call(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

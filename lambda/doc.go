// Package lambda is the AWS Lambda packaging of the platform's functions. The same binaries
// that run on Knative run on Lambda with no code change: shared/runtime's Lambda mode (used
// when AWS_LAMBDA_RUNTIME_API is set) serves API Gateway v2 HTTP events through the
// function's handler and turns EventBridge events into CloudEvents for its receivers.
//
//   - lambda/bundle builds a function's `bootstrap` (linux/arm64, static, -tags lambda.norpc)
//     and zips it; lambda/cmd/package does it for every catalog function into dist/lambda.
//   - lambda/sam generates template.yaml (AWS SAM) from the catalog; lambda/cmd/template
//     writes it, and a test fails when the committed file is stale.
//   - lambda/runtimeapi is a fake Lambda Runtime API for tests: the round-trip test in this
//     folder runs a built bootstrap against it.
package lambda

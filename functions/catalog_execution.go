package functions

func executionFunctions() []Function {
	return nil
}

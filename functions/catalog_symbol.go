package functions

func symbolFunctions() []Function {
	return nil
}

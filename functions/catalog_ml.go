package functions

func mlFunctions() []Function {
	return nil
}

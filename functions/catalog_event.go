package functions

func eventFunctions() []Function {
	return nil
}

package functions

func notificationFunctions() []Function {
	return nil
}

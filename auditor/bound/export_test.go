package bound

// FloatTensorType lets the tests build models with the graphs' own types.
var FloatTensorType = floatTensorType

package onnxgrad

// rules is the one table of operators onnxgrad knows: each line names the
// operator, its shape rule and its gradient rule (nil for shape arithmetic,
// which is never differentiated). The rules live in the ops_*.go files, each
// linked to its ONNX specification.
var rules = map[string]opRule{
	"Add":                {infer: inferBroadcast(func(a, b int64) int64 { return a + b }), grad: gradAdd},
	"Sub":                {infer: inferBroadcast(func(a, b int64) int64 { return a - b }), grad: gradSub},
	"Mul":                {infer: inferBroadcast(func(a, b int64) int64 { return a * b }), grad: gradMul},
	"Div":                {infer: inferBroadcast(divInts), grad: gradDiv},
	"Relu":               {infer: inferSame, grad: gradRelu},
	"LeakyRelu":          {infer: inferSame, grad: gradLeakyRelu},
	"Elu":                {infer: inferSame, grad: gradElu},
	"Sigmoid":            {infer: inferSame, grad: gradSigmoid},
	"Tanh":               {infer: inferSame, grad: gradTanh},
	"Exp":                {infer: inferSame, grad: gradExp},
	"Log":                {infer: inferSame, grad: gradLog},
	"Sqrt":               {infer: inferSame, grad: gradSqrt},
	"Softplus":           {infer: inferSame, grad: gradSoftplus},
	"Abs":                {infer: inferSame, grad: gradAbs},
	"Neg":                {infer: inferSame, grad: gradNeg},
	"Erf":                {infer: inferSame, grad: gradErf},
	"Reciprocal":         {infer: inferSame, grad: gradReciprocal},
	"HardSigmoid":        {infer: inferSame, grad: gradHardSigmoid},
	"PRelu":              {infer: inferSame, grad: gradPRelu},
	"Pow":                {infer: inferBroadcast(nil), grad: gradPow},
	"Sum":                {infer: inferBroadcast(nil), grad: gradSum},
	"Clip":               {infer: inferSame, grad: gradClip},
	"Identity":           {infer: inferSame, grad: gradPass},
	"Dropout":            {infer: inferSame, grad: gradDropout},
	"Cast":               {infer: inferCast, grad: gradPass},
	"Gemm":               {infer: inferGemm, grad: gradGemm},
	"MatMul":             {infer: inferMatMul, grad: gradMatMul},
	"Conv":               {infer: inferConv, grad: gradConv},
	"ConvTranspose":      {infer: inferConvTranspose, grad: gradConvTranspose},
	"MaxPool":            {infer: inferMaxPool, grad: gradMaxPool},
	"AveragePool":        {infer: inferAveragePool, grad: gradAveragePool},
	"GlobalAveragePool":  {infer: inferGlobalPool, grad: gradGlobalAveragePool},
	"BatchNormalization": {infer: inferBatchNorm, grad: gradBatchNorm},
	"LayerNormalization": {infer: inferLayerNorm, grad: gradLayerNorm},
	"GroupNormalization": {infer: inferSame, grad: gradGroupNorm},
	"Softmax":            {infer: inferSame, grad: gradSoftmax},
	"LogSoftmax":         {infer: inferSame, grad: gradLogSoftmax},
	"Flatten":            {infer: inferFlatten, grad: gradReshapeBack},
	"Reshape":            {infer: inferReshape, grad: gradReshapeBack},
	"Squeeze":            {infer: inferSqueeze, grad: gradReshapeBack},
	"Unsqueeze":          {infer: inferUnsqueeze, grad: gradReshapeBack},
	"Transpose":          {infer: inferTranspose, grad: gradTranspose},
	"Concat":             {infer: inferConcat, grad: gradConcat},
	"Slice":              {infer: inferSlice, grad: gradSlice},
	"Pad":                {infer: inferPad, grad: gradPad},
	"Resize":             {infer: inferResize, grad: gradResize},
	"Upsample":           {infer: inferResize, grad: gradResize},
	"Gather":             {infer: inferGather, grad: gradGather},
	"Expand":             {infer: inferExpand, grad: gradExpand},
	"ReduceSum":          {infer: inferReduce(13), grad: gradReduce(13, false)},
	"ReduceMean":         {infer: inferReduce(18), grad: gradReduce(18, true)},
	"Shape":              {infer: inferShape},
	"Size":               {infer: inferSize},
	"Constant":           {infer: inferConstant},
	"ConstantOfShape":    {infer: inferConstantOfShape},

	// Set apart: a longer name would realign every line above.
	"InstanceNormalization": {infer: inferSame, grad: gradInstanceNorm},
}

func divInts(a, b int64) int64 {
	if b == 0 {
		return 0
	}
	return a / b
}

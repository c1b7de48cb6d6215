#compdef marginaudit
# zsh completion for marginaudit; load it with
#   source <(marginaudit completion zsh)
# or save it as _marginaudit in a folder of $fpath. It asks the program
# itself: `marginaudit WORDS… --generate-bash-completion` prints the
# commands (as name:description) or flags that may come next.
_marginaudit() {
	local -a opts
	local cur=${words[-1]}
	if [[ $cur == -* ]]; then
		opts=("${(@f)$(${words[@]:0:#words[@]-1} $cur --generate-bash-completion 2>/dev/null)}")
	else
		opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
	fi
	if [[ ${opts[1]} != "" ]]; then
		_describe 'values' opts
	else
		_files
	fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
	_marginaudit "$@"
else
	compdef _marginaudit marginaudit
fi

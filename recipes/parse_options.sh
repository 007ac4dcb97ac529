# Shared option parser of the recipe scripts (as Kaldi's utils/parse_options.sh), sourced after the
# script declares its options, one per line at the start of the line, each with a help comment:
#
#   stage=0          # first stage to run
#   exp_dir=exp      # training and decoding outputs
#   . "$recipe_dir/../parse_options.sh"
#
# Then `--exp-dir DIR` (or `--exp-dir=DIR`) sets exp_dir, and `--help` lists every option with its
# default and help text. A variable assigned without a help comment (recipe_dir above) is no option.
# An unknown option, or one without its value, stops the script with exit status 2.

_script=${BASH_SOURCE[1]}
_options=()
_helps=()
while IFS= read -r _line; do
  case $_line in *parse_options.sh*) break ;; esac
  if [[ $_line =~ ^([a-z][a-z0-9_]*)=[^#]*[[:space:]]#[[:space:]]*(.*)$ ]]; then
    _options+=("${BASH_REMATCH[1]}")
    _helps+=("${BASH_REMATCH[2]}")
  fi
done < "$_script"

_usage() {
  echo "Usage: $_script [--option value ...]"
  echo "Options (default in brackets):"
  local i
  for i in "${!_options[@]}"; do
    printf '  --%-16s %s [%s]\n' "${_options[i]//_/-}" "${_helps[i]}" "${!_options[i]}"
  done
}

_known() {
  local name
  for name in "${_options[@]}"; do [ "$name" = "$1" ] && return 0; done
  return 1
}

while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) _usage; exit 0 ;;
    --*=*) _name=${1%%=*}; _value=${1#*=}; shift ;;
    --*)
      _name=$1
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 2; fi
      _value=$2; shift 2 ;;
    *) _name=$1 ;;
  esac
  _var=${_name#--}
  _var=${_var//-/_}
  if [[ $_name != --* ]] || ! _known "$_var"; then
    echo "$0: unknown option $_name (known: $(printf -- '--%s ' "${_options[@]//_/-}")--help)" >&2
    exit 2
  fi
  printf -v "$_var" '%s' "$_value"
done
unset -f _usage _known
unset _script _options _helps _line _name _value _var
